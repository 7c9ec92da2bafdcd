package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/credsign/credsign/internal/testing/servertest"
	"github.com/credsign/credsign/internal/testing/vaulttest"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
)

// TestBootStorm runs a small storm against a real server (embedded store,
// loopback) beside a real Vault: every device is registered by the bulk
// import and gets credentials cold and warm with no error, the bare
// handler and Vault baselines are measured with as many requests, and the
// ratios are computed from them.
func TestBootStorm(t *testing.T) {
	vault := vaulttest.Start(t)
	const admin = "csa_bootstorm-test-admin-0123456789"
	ts, st := servertest.Start(t, service.Config{AdminToken: admin})

	const n = 24
	r, err := BootStorm(context.Background(), StormOptions{Server: ts.URL, AdminToken: admin, Devices: n, Concurrency: 4,
		Prefix: "bs-", VaultAddr: vault.Addr, VaultToken: vault.RootToken})
	if err != nil {
		t.Fatal(err)
	}
	if r.Import.Devices != n || r.Import.Failed != 0 || r.Import.PerSecond <= 0 {
		t.Errorf("import: %+v", r.Import)
	}
	for name, s := range map[string]Stats{"cold": r.Cold, "warm": r.Warm, "bare": r.Bare, "vault": *r.Vault} {
		if s.Requests != n || s.Errors != 0 || s.PerSecond <= 0 || s.P50 <= 0 || s.P99 < s.P50 {
			t.Errorf("%s: %+v", name, s)
		}
	}
	if r.WarmVsBare != r.Warm.PerSecond/r.Bare.PerSecond || r.WarmVsVault != r.Warm.PerSecond/r.Vault.PerSecond || r.ColdVsBare <= 0 {
		t.Errorf("ratios: %+v", r)
	}
	for _, want := range []string{"boot storm: 24 devices", "warm/bare x", "warm/Vault x", "Vault KV GET"} {
		if !strings.Contains(r.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, r)
		}
	}
	page, err := st.ListDevices(context.Background(), secrets.ListOptions{Limit: 100})
	if err != nil || len(page.Devices) != n || page.Devices[0].ID != "bs-0" {
		t.Errorf("devices: %d, %v", len(page.Devices), err)
	}
}

// TestBootStormRefused: a wrong token fails the storm with the server's
// answer.
func TestBootStormRefused(t *testing.T) {
	ts, _ := servertest.Start(t, service.Config{AdminToken: "csa_the-right-admin-token-0123"})
	_, err := BootStorm(context.Background(), StormOptions{Server: ts.URL, ProvisionerToken: "csp_wrong", Devices: 2})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v, want a 401", err)
	}
}

// TestStormFirstError: a storm against a server that refuses some requests
// counts them and says what the first one got, without the token.
func TestStormFirstError(t *testing.T) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%3 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer ts.Close()
	const token = "csd_2.secret-token-text"
	reqs := make([]request, 30)
	for i := range reqs {
		reqs[i] = request{url: ts.URL + "/v1/devices/d/credentials", token: "Bearer " + token, header: "Authorization"}
	}
	s := storm(context.Background(), ts.Client(), reqs, 4)
	if s.Requests != 30 || s.Errors != 10 || !strings.Contains(s.FirstError, "503") || strings.Contains(s.FirstError, token) {
		t.Fatalf("stats %+v: want 10 errors of 30, the first a 503, no token", s)
	}
	report := StormReport{Cold: s}.String()
	if !strings.Contains(report, "errors 10 of 30 (first: ") {
		t.Errorf("report does not say the first error:\n%s", report)
	}
}
