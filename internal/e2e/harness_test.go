// Package e2e tests credsign end to end: the API (embedded store) started
// in-process on loopback, the device agent, and cloud emulators or
// Debian's Mosquitto as brokers.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/credsign/credsign/secrets/filestore"
)

// service is credsign's API with the embedded store, on a fixed loopback
// port so that it can be stopped and started again.
type service struct {
	t     *testing.T
	addr  string
	dir   string
	admin string
	now   func() time.Time

	mu    sync.Mutex
	srv   *http.Server
	store *filestore.Store
}

func newService(t *testing.T, now func() time.Time) *service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := &service{t: t, addr: addr, dir: t.TempDir(), admin: randomHex(t, 24), now: now}
	t.Cleanup(s.stop)
	return s
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// URL is the base URL of the service.
func (s *service) URL() string { return "http://" + s.addr }

func (s *service) start() {
	s.t.Helper()
	store, err := filestore.Open(filestore.Config{Dir: s.dir})
	if err != nil {
		s.t.Fatalf("open store: %v", err)
	}
	h, err := api.New(api.Config{Store: store, AdminToken: s.admin, Logger: zerolog.Nop(), Now: s.now})
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

func (s *service) stop() {
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

// call does an admin request and decodes a JSON answer into out.
func (s *service) call(method, path string, body, out any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.admin)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
}

// register creates a device and a device token, and returns the path of a
// token file for the agent.
func (s *service) register(id, cloud string, params map[string]any, secret string) string {
	s.t.Helper()
	s.call(http.MethodPut, "/v1/devices/"+id, map[string]any{"cloud": cloud, "params": params, "secret": secret}, nil)
	var tok struct {
		Token string `json:"token"`
	}
	s.call(http.MethodPost, "/v1/devices/"+id+"/tokens", nil, &tok)
	if tok.Token == "" {
		s.t.Fatal("no device token in the answer")
	}
	f := filepath.Join(s.t.TempDir(), id+".token")
	if err := os.WriteFile(f, []byte(tok.Token+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return f
}

// source is the agent's credsign client for a registered device.
func (s *service) source(id, tokenFile string, ttl time.Duration) agent.Source {
	s.t.Helper()
	src, err := agent.NewHTTPSource(agent.HTTPSourceConfig{Server: s.URL(), DeviceID: id, TokenFile: tokenFile, TTL: ttl})
	if err != nil {
		s.t.Fatal(err)
	}
	return src
}

func publish(ctx context.Context, t *testing.T, a *agent.Agent, topic, payload string) {
	t.Helper()
	if err := a.Publish(ctx, topic, []byte(payload), 1); err != nil {
		t.Fatal(fmt.Errorf("publish %q: %w", payload, err))
	}
}
