package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/service"
)

// BenchmarkIssueHTTP is one warm issuance over HTTP on loopback (a device
// token, no body), beside BenchmarkBareHandler, a bare net/http handler
// returning a credentials-sized JSON over the same client, in the same
// process: their ratio is what the API and the service cost.
func BenchmarkIssueHTTP(b *testing.B) {
	ts := benchServer(b)
	req := func(method, path, token, body string) *http.Request {
		return benchRequest(ts, method, path, token, body)
	}
	token := benchDevice(b, ts)
	issue := req(http.MethodPost, "/v1/devices/bench/credentials", token, "")
	body := mustDo(b, issue, 200)
	b.Run("issue", func(b *testing.B) {
		for b.Loop() {
			mustDo(b, issue.Clone(issue.Context()), 200)
		}
	})
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer bare.Close()
	b.Run("bare", func(b *testing.B) {
		r, _ := http.NewRequest(http.MethodPost, bare.URL+"/v1/devices/bench/credentials", nil)
		for b.Loop() {
			mustDo(b, r.Clone(r.Context()), 200)
		}
	})
}

// benchServer runs a server on a fresh embedded store, its logs discarded,
// until b ends.
func benchServer(b *testing.B) *httptest.Server {
	fs, err := filestore.Open(filestore.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = fs.Close() })
	srv, err := newServer(service.Config{Store: fs, AdminToken: testAdmin}, Config{Logger: zerolog.New(io.Discard)})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	b.Cleanup(ts.Close)
	return ts
}

func mustDo(b testing.TB, r *http.Request, want int) []byte {
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		b.Fatalf("%s %s: %d %s", r.Method, r.URL.Path, res.StatusCode, body)
	}
	return body
}

func decode(b testing.TB, body []byte, v any) {
	if err := json.Unmarshal(body, v); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkImportHTTP is one POST /v1/imports of 10,000 devices with their
// tokens over HTTP on loopback, in the same process as the embedded store:
// devices/s is the import's throughput; its CPU profile shows what a line
// costs the server.
func BenchmarkImportHTTP(b *testing.B) {
	ts := benchServer(b)
	const n = 10000
	run := 0
	for b.Loop() {
		var body strings.Builder
		for i := range n {
			fmt.Fprintf(&body, `{"id":"imp-%d-%d","cloud":"azure","params":{"hubHost":"h.azure-devices.net","deviceId":"d-%d"},"secret":"c2VjcmV0LWtleS0xMjM0NTY3ODkw"}`+"\n", run, i, i)
		}
		run++
		r, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/imports?tokens=true", strings.NewReader(body.String()))
		r.Header.Set("Content-Type", "application/x-ndjson")
		r.Header.Set("Authorization", "Bearer "+testAdmin)
		out := mustDo(b, r, 200)
		if got := bytes.Count(out, []byte(`"status":201`)); got != n {
			b.Fatalf("%d devices created, want %d", got, n)
		}
	}
	b.ReportMetric(float64(run*n)/b.Elapsed().Seconds(), "devices/s")
}

// benchRequest builds a request to ts; an empty token sends no
// Authorization, an empty body no Content-Type.
func benchRequest(ts *httptest.Server, method, path, token, body string) *http.Request {
	r, _ := http.NewRequest(method, ts.URL+path, nil)
	if body != "" {
		r, _ = http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// benchDevice puts the device "bench" on ts and returns a device token
// minted for it.
func benchDevice(b *testing.B, ts *httptest.Server) string {
	mustDo(b, benchRequest(ts, http.MethodPut, "/v1/devices/bench", testAdmin, `{"cloud":"azure","params":{"hubHost":"h.azure-devices.net","deviceId":"d"},"secret":"c2VjcmV0LWtleS0xMjM0NTY3ODkw"}`), 201)
	tok := mustDo(b, benchRequest(ts, http.MethodPost, "/v1/devices/bench/tokens", testAdmin, ""), 201)
	var minted struct{ Token string }
	decode(b, tok, &minted)
	return minted.Token
}

// BenchmarkIssueHandler is one warm issuance through the server's handler
// alone (no connection, no client): what the gate, the handler and the
// service allocate and spend on one credential.
func BenchmarkIssueHandler(b *testing.B) {
	ts := benchServer(b)
	token := benchDevice(b, ts)
	h := ts.Config.Handler
	issue := httptest.NewRequest(http.MethodPost, "/v1/devices/bench/credentials", nil)
	issue.Header.Set("Authorization", "Bearer "+token)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, issue.Clone(issue.Context()))
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
