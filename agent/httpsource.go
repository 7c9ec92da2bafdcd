package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/credsign/credsign/agent/client"
	"github.com/credsign/credsign/internal/retry"
)

// HTTPSource fetches credentials from a credsign server with a device token,
// through the client generated from openapi.yaml.
type HTTPSource struct {
	c         *client.ClientWithResponses
	deviceID  string
	tokenFile string
	prover    *Prover
	ttl       time.Duration
	// mu guards token, replaced by a rotation when there is no token file.
	mu    sync.Mutex
	token string
}

// HTTPSourceConfig configures an HTTPSource.
type HTTPSourceConfig struct {
	// Server is the credsign base URL. Plain http:// is accepted for
	// loopback addresses only.
	Server string
	// DeviceID is the device the token is bound to.
	DeviceID string
	// TokenFile holds the device token; it is read on every fetch so that a
	// rotated token is picked up. Token is used when TokenFile is empty.
	TokenFile string
	Token     string
	// Prover, when set, signs a DPoP proof of the device key for every
	// call instead of a token (TokenFile and Token are then unused).
	Prover *Prover
	// Roots verifies the server's TLS certificate; nil means the system
	// roots (CertPool adds a PEM bundle to them).
	Roots *x509.CertPool
	// TTL asks for a credential lifetime; zero takes the cloud's default.
	TTL time.Duration
	// Timeout bounds one request; default 30s.
	Timeout time.Duration
}

// NewHTTPSource checks the configuration and returns a source.
func NewHTTPSource(cfg HTTPSourceConfig) (*HTTPSource, error) {
	if cfg.Server == "" {
		return nil, errors.New("no credsign server (--server or CREDSIGN_SERVER)")
	}
	if cfg.DeviceID == "" {
		return nil, errors.New("no device id (--device or CREDSIGN_DEVICE)")
	}
	if cfg.TokenFile == "" && cfg.Token == "" && cfg.Prover == nil {
		return nil, errors.New("no device token (--token-file or CREDSIGN_TOKEN_FILE)")
	}
	c, err := newClient(cfg.Server, cfg.Roots, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return &HTTPSource{c: c, deviceID: cfg.DeviceID, tokenFile: cfg.TokenFile, token: cfg.Token, prover: cfg.Prover, ttl: cfg.TTL}, nil
}

// newClient returns the generated client for server (https://, or http://
// on loopback only), trusting roots (nil: the system's), each request
// bounded by timeout (default 30s).
func newClient(server string, roots *x509.CertPool, timeout time.Duration) (*client.ClientWithResponses, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", server, err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("server URL %q: plain http is for loopback only; use https", server)
		}
	default:
		return nil, fmt.Errorf("server URL %q: want https:// (or http:// on loopback)", server)
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	hc := &http.Client{Transport: tr, Timeout: timeout}
	c, err := client.NewClientWithResponses(server, client.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("credsign client: %w", err)
	}
	return c, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CertPool returns the system roots plus the PEM certificates in file.
func CertPool(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if file == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", file)
	}
	return pool, nil
}

func (s *HTTPSource) readToken() (string, error) {
	if s.tokenFile == "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.token, nil
	}
	b, err := os.ReadFile(s.tokenFile)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%w: token file %s is empty", ErrNoToken, s.tokenFile)
	}
	return tok, nil
}

// Fetch implements Source.
func (s *HTTPSource) Fetch(ctx context.Context) (Credentials, error) {
	var body client.CredentialsRequest
	if s.ttl > 0 {
		secs := int((s.ttl + time.Second - 1) / time.Second)
		body.TTLSeconds = secs
	}
	var auth client.RequestEditorFn
	if s.prover != nil {
		auth = s.prover.editor()
	} else {
		tok, err := s.readToken()
		if err != nil {
			return Credentials{}, err
		}
		auth = func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+tok)
			return nil
		}
	}
	resp, err := s.c.IssueCredentialsWithResponse(ctx, s.deviceID, body, auth)
	if err == nil && s.prover != nil && s.prover.observe(resp.HTTPResponse, reasonOf(problemOf(resp))) {
		// The server wants its nonce (or refused the clock): once more with it.
		resp, err = s.c.IssueCredentialsWithResponse(ctx, s.deviceID, body, auth)
	}
	if err != nil {
		// The URL is in the error, the token never is.
		return Credentials{}, fmt.Errorf("fetch credentials: %w", err)
	}
	if s.prover != nil {
		s.prover.observe(resp.HTTPResponse, "")
	}
	if c := resp.JSON200; c != nil {
		out := Credentials(*c)
		if err := out.Validate(); err != nil {
			return Credentials{}, fmt.Errorf("fetch credentials: %w", err)
		}
		return out, nil
	}
	return Credentials{}, fetchError(resp.HTTPResponse, problemOf(resp))
}

// fetchError is the FetchError of an error answer and its problem (nil if
// it had none).
func fetchError(resp *http.Response, p *client.Problem) *FetchError {
	fe := &FetchError{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	if p != nil {
		fe.Title = p.Title
		fe.Detail = p.Detail
		fe.Reason = reasonOf(p)
		for _, f := range p.Errors {
			fe.Errors = append(fe.Errors, FieldError{Field: f.Field, Reason: f.Reason})
		}
	}
	fe.RetryAfter, _ = retry.ParseAfter(resp.Header.Get("Retry-After"), time.Now())
	return fe
}

// reasonOf is the reason member of a problem, "" when none.
func reasonOf(p *client.Problem) string {
	if p == nil {
		return ""
	}
	return string(p.Reason)
}

func problemOf(r *client.IssueCredentialsResponse) *client.Problem {
	for _, p := range []*client.Problem{
		r.ApplicationProblemJSON401, r.ApplicationProblemJSON429, r.ApplicationProblemJSON503, r.ApplicationProblemJSONDefault,
	} {
		if p != nil {
			return p
		}
	}
	return nil
}
