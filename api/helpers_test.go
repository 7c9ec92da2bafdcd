package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/rs/zerolog"

	"github.com/credsign/credsign"
	"github.com/credsign/credsign/internal/metrics"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/service"

	"github.com/credsign/credsign/internal/testing/testutil"
)

const testAdmin = "csa_test-admin-token-0123456789abcdef"

// flakyStore is a real store that can be switched to answer ErrUnavailable,
// or to hold device writes until the test lets them go (a slow store, at
// the instant a test needs it). It counts its pings, each of which takes
// pingDelay.
type flakyStore struct {
	secrets.Store
	down      atomic.Bool
	hold      atomic.Pointer[heldPuts]
	pings     atomic.Int64
	pingDelay time.Duration
}

// heldPuts holds device writes: each says its device ID on entered, then
// waits until release is closed.
type heldPuts struct {
	entered chan string
	release chan struct{}
}

func (f *flakyStore) err() error {
	if f.down.Load() {
		return secrets.ErrUnavailable
	}
	return nil
}

func (f *flakyStore) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	if err := f.err(); err != nil {
		return secrets.Device{}, err
	}
	return f.Store.GetDevice(ctx, id)
}

func (f *flakyStore) PutDevice(ctx context.Context, d secrets.Device, v int64) (secrets.Device, error) {
	if h := f.hold.Load(); h != nil {
		h.entered <- d.ID
		<-h.release
	}
	if err := f.err(); err != nil {
		return secrets.Device{}, err
	}
	return f.Store.PutDevice(ctx, d, v)
}

func (f *flakyStore) TokenByHash(ctx context.Context, h string) (secrets.Token, error) {
	if err := f.err(); err != nil {
		return secrets.Token{}, err
	}
	return f.Store.TokenByHash(ctx, h)
}

func (f *flakyStore) Ping(ctx context.Context) error {
	f.pings.Add(1)
	time.Sleep(f.pingDelay)
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

// env is a server running for real on a loopback port, with its logs and
// a client that checks every response against openapi.yaml.
type env struct {
	t      *testing.T
	url    string
	store  *flakyStore
	dir    string // the data directory of the file store under store
	logs   *testutil.SyncBuffer
	router routers.Router
	// bodies collects every response body, to search for leaked secrets.
	bodies *testutil.SyncBuffer
}

// envConfig is what newEnv builds a server from: the service's settings
// and the HTTP layer's.
type envConfig struct {
	service.Config
	httpConfig
}

// httpConfig is Config, under a name that can be embedded beside
// service.Config.
type httpConfig = Config

// newServer builds the service of sc, with its store instrumented as
// credsign serve does, and the Server of it.
func newServer(sc service.Config, c Config) (*Server, error) {
	if sc.Metrics == nil {
		sc.Metrics = metrics.New()
	}
	sc.Store = sc.Metrics.InstrumentStore(sc.Store)
	svc, err := service.New(sc)
	if err != nil {
		return nil, err
	}
	return New(svc, c)
}

func newEnv(t *testing.T, mod func(*envConfig)) *env {
	t.Helper()
	dir := t.TempDir()
	fs, err := filestore.Open(filestore.Config{Dir: dir})
	if err != nil {
		t.Fatalf("opening filestore: %v", err)
	}
	st := &flakyStore{Store: fs}
	logs := &testutil.SyncBuffer{}
	cfg := envConfig{
		httpConfig: Config{Logger: zerolog.New(logs)},
		Config: service.Config{
			Store:      st,
			AdminToken: testAdmin,
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := newServer(cfg.Config, cfg.httpConfig)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		_ = fs.Close()
	})
	router := testRouter(t)
	return &env{t: t, url: ts.URL, store: st, dir: dir, logs: logs, router: router, bodies: &testutil.SyncBuffer{}}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// problem decodes a problem body and checks its form.
func (r resp) problem(t *testing.T) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %s)", ct, r.body)
	}
	var p map[string]any
	r.json(t, &p)
	if int(p["status"].(float64)) != r.status {
		t.Fatalf("problem status %v != %d", p["status"], r.status)
	}
	return p
}

// do sends a request and validates the response against openapi.yaml.
// body is JSON-encoded unless it is a string or []byte (sent as JSON) or
// an ndjsonBody.
func (e *env) do(method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	var raw []byte
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case ndjsonBody:
		raw, ct = []byte(b), ndjson
	case mergePatch:
		raw, ct = []byte(b), "application/merge-patch+json"
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	out := testutil.ReadAnswer(e.t, method+" "+path, res, err)
	_, _ = e.bodies.Write(out)
	e.validate(req, raw, res, out)
	return resp{status: res.StatusCode, header: res.Header, body: out}
}

// validate checks a response against the operation's declared responses.
func (e *env) validate(req *http.Request, reqBody []byte, res *http.Response, body []byte) {
	e.t.Helper()
	if res.Header.Get("X-Request-Id") == "" {
		e.t.Errorf("%s %s: no X-Request-Id", req.Method, req.URL.Path)
	}
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := e.router.FindRoute(vreq)
	if err != nil {
		// Not an operation of the contract: still a problem document.
		if res.StatusCode >= 400 && res.Header.Get("Content-Type") != "application/problem+json" {
			e.t.Errorf("%s %s: %d without problem JSON", req.Method, req.URL.Path, res.StatusCode)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  res.StatusCode,
		Header:  res.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		e.t.Errorf("%s %s → %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
	// A status the operation does not list is declared only through its
	// default, the shared problem response, which covers failures alone;
	// and a problem says the status it was answered with.
	if route.Operation.Responses.Status(res.StatusCode) == nil && res.StatusCode < 400 {
		e.t.Errorf("%s %s → %d: a success the operation does not list", req.Method, req.URL.Path, res.StatusCode)
	}
	if res.StatusCode >= 400 && req.Method != http.MethodHead {
		var p struct {
			Status int `json:"status"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Status != res.StatusCode {
			e.t.Errorf("%s %s → %d: problem status %d (%v)", req.Method, req.URL.Path, res.StatusCode, p.Status, err)
		}
	}
}

// devices returns a valid device document per cloud.
func devices() map[string]map[string]any {
	return map[string]map[string]any{
		"aliyun": {
			"cloud":  "aliyun",
			"params": map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": "lamp-7"},
			"secret": "aliyun-secret-7f3c9e1d2b4a",
			"labels": map[string]string{"site": "sz"},
		},
		"tencent": {
			"cloud":  "tencent",
			"params": map[string]any{"productId": "ABCDEFGHIJ", "deviceName": "dev1"},
			"secret": "dGVuY2VudC1wc2stc2VjcmV0LTQ0MQ==",
			"labels": map[string]string{"site": "bj"},
		},
		"huawei": {
			"cloud":  "huawei",
			"params": map[string]any{"deviceId": "64f1_node1", "checkTimestamp": true},
			"secret": "huawei-secret-5b8e2d",
		},
		"azure": {
			"cloud":  "azure",
			"params": map[string]any{"hubHost": "myhub.azure-devices.net", "deviceId": "dev-az", "port": 8883},
			"secret": "YXp1cmUtZGV2aWNlLWtleS0zMi1ieXRlcy1sb25nISE=",
		},
	}
}

// mustStatus fails unless r has the wanted status.
func mustStatus(t *testing.T, r resp, want int, what string) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, want, strings.TrimSpace(string(r.body)))
	}
}

// testRouter routes requests by openapi.yaml with kin-openapi's own router,
// independent of the server's chi routing, to check responses against the
// operation a request names.
func testRouter(t *testing.T) routers.Router {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(credsign.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
