// Package clients_test runs the device clients of clients/python,
// clients/micropython and clients/c as separate processes against credsign's
// API (embedded store, in-process on loopback) and the cloud emulators of
// internal/cloudemu, which verify each cloud's recipe and enforce expiry.
package clients_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api"
	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/emutest"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/service"
)

// exchange is one credentials request as the server answered it.
type exchange struct {
	at         time.Time
	status     int
	retryAfter string
	creds      cloud.Credentials // the API's answer; zero unless status is 200
}

// server is credsign's real API handler behind a recorder that keeps every
// credentials exchange (to time the clients' retries and to know every
// password issued, for the secret search of their output).
type server struct {
	t          *testing.T
	url        string
	adminToken string
	caFile     string // PEM of the CA that signed the HTTPS certificate

	// unavailable is a FAKE: while positive, the recorder answers that many
	// credentials requests with 503 and Retry-After: 2 itself (a store
	// outage is hard to produce on demand with the embedded store).
	unavailable atomic.Int32

	mu  sync.Mutex
	log []exchange
}

type serverOptions struct {
	now       func() time.Time
	ratePerMi float64 // device token rate a minute; 0: unlimited
	// firstIssue runs once, before the first credentials request is served.
	firstIssue func()
	// minTokenLifetime and rotationOverlap are the server's (0: defaults).
	minTokenLifetime, rotationOverlap time.Duration
	// wrap, when set, goes in front of the API (keys_test.go's proof recorder).
	wrap func(http.Handler) http.Handler
	// requireNonce makes the server require its DPoP nonce in proofs.
	requireNonce bool
}

func startServer(t *testing.T, o serverOptions) *server {
	t.Helper()
	store, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	s := &server{t: t, adminToken: testutil.RandomHex(t, 24)}
	svc, err := service.New(service.Config{Store: store, AdminToken: s.adminToken, Now: o.now,
		MinTokenLifetime: o.minTokenLifetime, RotationOverlap: o.rotationOverlap, RequireDPoPNonce: o.requireNonce})
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	h, err := api.New(svc, api.Config{Logger: zerolog.Nop(), RatePerMinute: o.ratePerMi, RateBurst: 1})
	if err != nil {
		t.Fatalf("api: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca, cfg := emutest.LoopbackTLS(t)
	s.caFile = testutil.WriteFile(t, "credsign-ca.pem", ca.CertPEM())
	ln = tls.NewListener(ln, cfg)
	s.url = "https://" + ln.Addr().String()
	handler := s.record(h, o.firstIssue)
	if o.wrap != nil {
		handler = o.wrap(handler)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = store.Close()
	})
	return s
}

type recordingWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *recordingWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (s *server) record(h http.Handler, firstIssue func()) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/credentials") {
			h.ServeHTTP(w, r)
			return
		}
		if firstIssue != nil {
			once.Do(firstIssue)
		}
		ex := exchange{at: time.Now()}
		if s.unavailable.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"fake outage from the test"}`)
			ex.status, ex.retryAfter = http.StatusServiceUnavailable, "2"
		} else {
			s.unavailable.Store(0)
			rw := &recordingWriter{ResponseWriter: w}
			h.ServeHTTP(rw, r)
			ex.status, ex.retryAfter = rw.status, w.Header().Get("Retry-After")
			if rw.status == http.StatusOK {
				if err := json.Unmarshal(rw.body.Bytes(), &ex.creds); err != nil {
					s.t.Errorf("credentials answer: %v", err)
				}
			}
		}
		s.mu.Lock()
		s.log = append(s.log, ex)
		s.mu.Unlock()
	})
}

// exchanges returns a copy of the credentials exchanges so far.
func (s *server) exchanges() []exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]exchange(nil), s.log...)
}

// call does an admin request and decodes a JSON answer into out.
func (s *server) call(method, path string, body, out any) {
	s.t.Helper()
	s.admin().Call(method, path, body, out)
}

// admin is the admin client of s.
func (s *server) admin() testutil.Admin {
	return testutil.Admin{T: s.t, URL: s.url, Token: s.adminToken, Client: s.httpClient()}
}

func (s *server) httpClient() *http.Client {
	pem, err := os.ReadFile(s.caFile)
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509Pool(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// device is a test device as registered in credsign (host and port are
// added to point at its emulator).
type device struct {
	emutest.Device
	// wrongSecret, when set, is registered in credsign instead of Secret
	// (the emulator keeps Secret), so the broker refuses every triple.
	wrongSecret string
}

var devices = []device{
	{Device: emutest.Devices[0]},
	{Device: emutest.Devices[1]},
	{Device: emutest.Devices[2]},
	{Device: emutest.Devices[3]},
}

// registered is a device registered in a server, with its emulator.
type registered struct {
	device
	id        string
	emu       *cloudemu.Emulator
	token     string
	tokenID   string
	tokenFile string
	caFile    string // the emulator's CA, for TLS brokers
}

func (s *server) register(t *testing.T, d device, now func() time.Time) *registered {
	t.Helper()
	e, params := emutest.Start(t, d.Device, now)
	r := &registered{device: d, id: "lamp-" + d.Cloud, emu: e}
	secret := d.Secret
	if d.wrongSecret != "" {
		secret = d.wrongSecret
	}
	r.tokenID, r.token = s.admin().Register(r.id, d.Cloud, params, secret)
	r.tokenFile = testutil.WriteFile(t, r.id+".token", []byte(r.token+"\n"))
	if d.TLS {
		r.caFile = testutil.WriteFile(t, d.Cloud+"-ca.pem", e.CAPEM())
	}
	return r
}

// settings are what every client is told, each in its own way.
type settings struct {
	server, device, tokenFile, caFile, brokerCAFile string
	// topic, when set, overrides the credentials' telemetry topic.
	topic    string
	ttl      int
	interval float64
	// timeout is how long each network step may take, in seconds
	// (MicroPython client; 0: its default).
	timeout int
	// mpArgs go before the script on MicroPython's command line (-X heapsize=…).
	mpArgs []string
}

func settingsFor(s *server, r *registered, ttl int) settings {
	return settings{server: s.url, device: r.id, tokenFile: r.tokenFile, caFile: s.caFile,
		brokerCAFile: r.caFile, ttl: ttl, interval: 0.3, timeout: 3}
}

// process is a running client.
type process struct {
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer // stdout and stderr
	done chan struct{}
	err  error // set when done is closed
}

// start runs c; secrets lists what to blank out of its output when the test
// fails and the output is shown.
func start(t *testing.T, c *exec.Cmd, secrets func() []string) *process {
	t.Helper()
	p := &process{cmd: c, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	c.Stdout, c.Stderr = p.out, p.out
	c.WaitDelay = 5 * time.Second
	if err := c.Start(); err != nil {
		t.Fatalf("start %s: %v", c.Path, err)
	}
	go func() { p.err = c.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-p.done
		if t.Failed() {
			out := p.out.String()
			for _, s := range secrets() {
				if s != "" {
					out = strings.ReplaceAll(out, s, "[SECRET]")
				}
			}
			t.Logf("client output:\n%s", out)
		}
	})
	return p
}

// exited reports whether the process ended on its own.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// eachRuntime runs test for each client runtime, in parallel subtests named
// after it, each with a minute to run.
func eachRuntime(t *testing.T, test func(ctx context.Context, t *testing.T, rt runtime)) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			test(testContext(t, 60*time.Second), t, rt)
		})
	}
}

// startFor starts cmd as the client of r on srv: r's secrets (secretsOf)
// are blanked from its output when the test fails and the output is shown.
func startFor(t *testing.T, cmd *exec.Cmd, srv *server, r *registered) *process {
	t.Helper()
	return start(t, cmd, func() []string { return secretsOf(srv, r) })
}

// healthy fails t if the client has exited or its output holds a secret
// of r's.
func healthy(t *testing.T, p *process, srv *server, r *registered) {
	t.Helper()
	if p.exited() {
		t.Fatalf("the client exited (%v)", p.err)
	}
	noSecrets(t, p, secretsOf(srv, r)...)
}

// noSecrets fails t if the client's output holds any of secrets.
func noSecrets(t *testing.T, p *process, secrets ...string) {
	t.Helper()
	out := p.out.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("the client's output holds a secret (%d characters, starting %.4q)", len(s), s)
		}
	}
}

// secretsOf lists what must never appear in a client's output: the device
// token, the device secret and every password the server issued.
func secretsOf(s *server, r *registered) []string {
	out := []string{r.token, r.Secret, r.wrongSecret}
	for _, ex := range s.exchanges() {
		out = append(out, ex.creds.Password)
	}
	return out
}
