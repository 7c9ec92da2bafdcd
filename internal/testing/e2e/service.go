// Package e2e tests credsign end to end: the API (embedded store) started
// in-process on loopback, the device agent, and cloud emulators or
// Debian's Mosquitto as brokers. Its Service and Mosquitto are the real
// credsign and the real broker that the agent's command-line tests run
// against too.
package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/api"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/service"
)

// Service is credsign's API with the embedded store, on a fixed loopback
// port so that it can be stopped and started again.
type Service struct {
	t     testing.TB
	addr  string
	dir   string
	admin string
	now   func() time.Time

	mu    sync.Mutex
	srv   *http.Server
	store *filestore.Store
}

// NewService picks a free loopback port for a credsign whose clock is now
// (nil: real time); Start starts it. It is stopped when the test ends.
func NewService(t testing.TB, now func() time.Time) *Service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := &Service{t: t, addr: addr, dir: t.TempDir(), admin: testutil.RandomHex(t, 24), now: now}
	t.Cleanup(s.Stop)
	return s
}

// StartService is NewService and Start.
func StartService(t testing.TB, now func() time.Time) *Service {
	t.Helper()
	s := NewService(t, now)
	s.Start()
	return s
}

// URL is the base URL of the service.
func (s *Service) URL() string { return "http://" + s.addr }

// Start serves the API, on the same port and data as before a Stop.
func (s *Service) Start() {
	s.t.Helper()
	store, err := filestore.Open(filestore.Config{Dir: s.dir})
	if err != nil {
		s.t.Fatalf("open store: %v", err)
	}
	svc, err := service.New(service.Config{Store: store, AdminToken: s.admin, Now: s.now, Issuer: s.URL()})
	if err != nil {
		s.t.Fatalf("service: %v", err)
	}
	h, err := api.New(svc, api.Config{Logger: zerolog.Nop()})
	if err != nil {
		s.t.Fatalf("api: %v", err)
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen on %s: %v", s.addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.mu.Lock()
	s.srv, s.store = srv, store
	s.mu.Unlock()
}

// Stop shuts the API down; the data stays for the next Start.
func (s *Service) Stop() {
	s.mu.Lock()
	srv, store := s.srv, s.store
	s.srv, s.store = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = store.Close()
}

// Call does an admin request and decodes a JSON answer into out; it fails
// the test on a status of 300 or more.
func (s *Service) Call(method, path string, body, out any) {
	s.t.Helper()
	testutil.Admin{T: s.t, URL: s.URL(), Token: s.admin}.Call(method, path, body, out)
}

// Do does an admin request and returns the status and body of the answer.
func (s *Service) Do(method, path string, body any) (int, []byte) {
	s.t.Helper()
	status, _, b := testutil.Do(s.t, nil, method, s.URL()+path, s.admin, body)
	return status, b
}

// Put creates or replaces a device (PUT /v1/devices/{id}): registering an
// existing device on another cloud is how it moves; its tokens stay.
func (s *Service) Put(id, cloud string, params map[string]any, secret string) {
	s.t.Helper()
	body := map[string]any{"cloud": cloud, "params": params}
	if secret != "" { // jwt devices have none
		body["secret"] = secret
	}
	s.Call(http.MethodPut, "/v1/devices/"+id, body, nil)
}

// JWKSURL is where the service publishes its JWT keys.
func (s *Service) JWKSURL() string { return s.URL() + "/.well-known/jwks.json" }

// RotateJWTKey makes a new JWT signing key current (POST
// /v1/keys/jwt/rotate as admin) and returns its kid.
func (s *Service) RotateJWTKey() string {
	s.t.Helper()
	var out struct {
		Kid string `json:"kid"`
	}
	s.Call(http.MethodPost, "/v1/keys/jwt/rotate", nil, &out)
	if out.Kid == "" {
		s.t.Fatal("no kid in the rotation's answer")
	}
	return out.Kid
}

// Register creates a device and a device token, and returns the path of a
// token file for the agent.
func (s *Service) Register(id, cloud string, params map[string]any, secret string) string {
	s.t.Helper()
	s.Put(id, cloud, params, secret)
	var tok struct {
		Token string `json:"token"`
	}
	s.Call(http.MethodPost, "/v1/devices/"+id+"/tokens", nil, &tok)
	if tok.Token == "" {
		s.t.Fatal("no device token in the answer")
	}
	f := filepath.Join(s.t.TempDir(), id+".token")
	if err := os.WriteFile(f, []byte(tok.Token+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return f
}

// Source is the agent's credsign client for a registered device.
func (s *Service) Source(id, tokenFile string, ttl time.Duration) agent.Source {
	s.t.Helper()
	src, err := agent.NewHTTPSource(agent.HTTPSourceConfig{Server: s.URL(), DeviceID: id, TokenFile: tokenFile, TTL: ttl})
	if err != nil {
		s.t.Fatal(err)
	}
	return src
}
