package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/service"
)

// TestSetAdminTokens: two admin tokens are valid at once; after a swap the
// removed one gets 401 and the new one is in; an unfit set changes nothing;
// every admin token, the second and a rotated-out one too, is redacted
// from the access log; the audit event has the count, no token text.
func TestSetAdminTokens(t *testing.T) {
	const a, b, c = "first-admin-token-0001", "second-admin-token-0002", "third-admin-token-0003"
	fs, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	logs := &testutil.SyncBuffer{}
	srv, err := newServer(service.Config{Store: fs, AdminTokens: []string{a, b}}, Config{Logger: zerolog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	status := func(path, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	want := func(step string, valid map[string]bool) {
		t.Helper()
		for _, tok := range []string{a, b, c} {
			w := http.StatusUnauthorized
			if valid[tok] {
				w = http.StatusOK
			}
			if got := status("/v1/devices", tok); got != w {
				t.Errorf("%s: admin token %.6s…: %d, want %d", step, tok, got, w)
			}
		}
	}
	want("start", map[string]bool{a: true, b: true})

	ctx := context.Background()
	if err := srv.SetAdminTokens(ctx, []string{b, c}); err != nil {
		t.Fatal(err)
	}
	want("after the swap", map[string]bool{b: true, c: true})
	for _, bad := range [][]string{nil, {c, "short"}, {"with space in it ok"}} {
		if err := srv.SetAdminTokens(ctx, bad); err == nil {
			t.Errorf("SetAdminTokens(%d unfit) accepted", len(bad))
		} else if strings.Contains(err.Error(), c) {
			t.Errorf("error holds a token: %v", err)
		}
	}
	want("after unfit sets", map[string]bool{b: true, c: true})

	for _, tok := range []string{a, b, c} {
		status("/v1/devices/"+tok, c)
	}
	out := logs.String()
	for _, tok := range []string{a, b, c} {
		if strings.Contains(out, tok) {
			t.Errorf("admin token %.6s… reached the log:\n%s", tok, out)
		}
	}
	if n := strings.Count(out, `"event":"admin.tokens.reloaded"`); n != 1 || !strings.Contains(out, `"count":2`) {
		t.Errorf("%d admin.tokens.reloaded audit events (want 1, with count 2):\n%s", n, out)
	}
}
