package cloudemu

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The registration emulators (DPS, Alibaba and Tencent dynamic
// registration) are HTTPS servers on loopback. They share this plumbing:
// a listener with a certificate from the test CA, a request log, and
// injected faults for the failures a real server cannot easily be made to
// produce on demand (a 503 or 429 with Retry-After).

// Fault is an answer the emulator gives instead of handling a request.
type Fault struct {
	// Status is the HTTP status to answer, e.g. 503 or 429.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header (seconds or
	// an HTTP date).
	RetryAfter string
}

// HTTPRequest records one request a registration emulator answered.
type HTTPRequest struct {
	Method string
	Path   string
	Status int
	At     time.Time
}

// httpsEmu is the HTTPS server under each registration emulator.
type httpsEmu struct {
	ca   *TestCA
	srv  *http.Server
	addr string
	now  func() time.Time

	mu     sync.Mutex
	faults []Fault
	log    []HTTPRequest
	done   chan struct{}
}

// start listens on 127.0.0.1:0 with TLS and serves h behind the fault queue
// and the request log.
func (s *httpsEmu) start(ca *TestCA, now func() time.Time, h http.Handler) error {
	if now == nil {
		now = time.Now
	}
	s.now = now
	if ca == nil {
		c, err := NewTestCA()
		if err != nil {
			return fmt.Errorf("cloudemu: %w", err)
		}
		ca = c
	}
	s.ca = ca
	cfg, err := ca.ServerConfig()
	if err != nil {
		return fmt.Errorf("cloudemu: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("cloudemu: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s.wrap(h),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		_ = s.srv.ServeTLS(ln, "", "")
	}()
	return nil
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *httpsEmu) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := s.now()
		s.mu.Lock()
		var f *Fault
		if len(s.faults) > 0 {
			f = &s.faults[0]
			s.faults = s.faults[1:]
		}
		s.mu.Unlock()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if f != nil {
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			writeJSON(rec, f.Status, map[string]any{"message": http.StatusText(f.Status)})
		} else {
			h.ServeHTTP(rec, r)
		}
		s.mu.Lock()
		s.log = append(s.log, HTTPRequest{Method: r.Method, Path: r.URL.Path, Status: rec.status, At: at})
		s.mu.Unlock()
	})
}

// InjectFaults queues answers given, in order, to the next requests
// instead of handling them.
func (s *httpsEmu) InjectFaults(f ...Fault) {
	s.mu.Lock()
	s.faults = append(s.faults, f...)
	s.mu.Unlock()
}

// Requests returns the requests answered so far.
func (s *httpsEmu) Requests() []HTTPRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]HTTPRequest(nil), s.log...)
}

// Addr returns the host:port the emulator listens on (127.0.0.1).
func (s *httpsEmu) Addr() string { return s.addr }

// CAPEM returns the PEM of the CA that signed the emulator's certificate.
func (s *httpsEmu) CAPEM() []byte { return s.ca.CertPEM() }

// Client returns an HTTP client that trusts only the emulator's CA.
func (s *httpsEmu) Client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// Close stops the server and drops its connections at once (a graceful
// HTTP/2 shutdown would hold each test for a second).
func (s *httpsEmu) Close() error {
	err := s.srv.Close()
	<-s.done
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("cloudemu: close: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// randomID returns n random bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b)
}
