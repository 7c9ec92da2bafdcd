package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/internal/testing/vaulttest"
)

// TestServeVault runs the server against a real Vault dev server: with
// VAULT_ADDR set and no --store, Vault is the store. It walks the flow and
// checks that neither the Vault token nor anything secret reaches the logs.
func TestServeVault(t *testing.T) {
	v := vaulttest.Start(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.RootToken)
	env := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin, "VAULT_ADDR": v.Addr, "VAULT_TOKEN": v.RootToken}
	r := startServe(t, env)
	if !strings.Contains(r.stderr.String(), `"store":"vault"`) {
		t.Fatalf("VAULT_ADDR set but the store is not vault:\n%s", r.stderr)
	}
	base := "http://" + r.addr
	c := http.DefaultClient
	if code := call(t, c, "GET", base+"/readyz", "", nil, nil); code != 200 {
		t.Errorf("readyz: %d", code)
	}
	// A dev server's root token does not expire: the gauge says 0.
	if v := metricValue(t, c, base, "credsign_vault_token_expiry_timestamp_seconds"); v != 0 {
		t.Errorf("credsign_vault_token_expiry_timestamp_seconds = %v, want 0 for a root token", v)
	}
	var prov, dev struct{ Token string }
	if code := call(t, c, "POST", base+"/v1/tokens", srvAdmin, map[string]string{"role": "provisioner"}, &prov); code != 201 {
		t.Fatalf("provisioner token: %d", code)
	}
	secret := "vault-backed-device-secret-41"
	doc := map[string]any{"cloud": "huawei", "params": map[string]any{"deviceId": "p_vault"}, "secret": secret}
	if code := call(t, c, "PUT", base+"/v1/devices/v1", prov.Token, doc, nil); code != 201 {
		t.Fatalf("put: %d", code)
	}
	if code := call(t, c, "PUT", base+"/v1/devices/v1", prov.Token, doc, nil); code != 200 {
		t.Errorf("replace: %d", code)
	}
	if code := call(t, c, "POST", base+"/v1/devices/v1/tokens", prov.Token, nil, &dev); code != 201 {
		t.Fatalf("device token: %d", code)
	}
	var cr struct{ Password string }
	if code := call(t, c, "POST", base+"/v1/devices/v1/credentials", dev.Token, nil, &cr); code != 200 {
		t.Fatalf("credentials: %d", code)
	}
	if code := call(t, c, "POST", base+"/v1/devices/v1/credentials", prov.Token, nil, nil); code != 200 {
		t.Errorf("credentials as provisioner: %d", code)
	}
	r.shutdown(t)
	logs := r.stderr.String()
	for _, s := range []string{srvAdmin, prov.Token, dev.Token, secret, cr.Password, v.RootToken} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain a secret or token (%.6s…)", s)
		}
	}
}

// TestServeVaultOutage stops Vault under a running service, for real: frozen
// (SIGSTOP), then killed and restarted on the same port. While it is gone,
// every store-backed call answers a clear 503 problem with Retry-After within
// the configured timeout; once it is back, issuing resumes without
// restarting the service.
func TestServeVaultOutage(t *testing.T) {
	v := vaulttest.Start(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.RootToken)
	t.Setenv("CREDSIGN_VAULT_TIMEOUT", "2s")
	env := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin, "VAULT_ADDR": v.Addr, "VAULT_TOKEN": v.RootToken, "CREDSIGN_VAULT_TIMEOUT": "2s"}
	// Without the cache: every store-backed call sees the outage
	// (TestServeReplicasShareVault covers the cache).
	r := startServe(t, env, "--rate-limit", "0", "--cache-ttl", "-1s")
	base := "http://" + r.addr
	c := &http.Client{Timeout: 20 * time.Second}

	// register makes the device and its token; a dev-mode Vault forgets both when killed.
	register := func() string {
		t.Helper()
		doc := map[string]any{"cloud": "azure", "params": map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "d1"}, "secret": "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="}
		if code := call(t, c, "PUT", base+"/v1/devices/d1", srvAdmin, doc, nil); code/100 != 2 {
			t.Fatalf("put device: %d", code)
		}
		var dev struct{ Token string }
		if code := call(t, c, "POST", base+"/v1/devices/d1/tokens", srvAdmin, nil, &dev); code != 201 {
			t.Fatalf("device token: %d", code)
		}
		return dev.Token
	}
	issue := func() (int, http.Header, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/v1/devices/d1/credentials", nil)
		req.Header.Set("Authorization", "Bearer "+srvAdmin)
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("issue: %v", err)
		}
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, res.Header, body
	}
	expectOutage := func(what string) {
		t.Helper()
		start := time.Now()
		code, hdr, body := issue()
		if took := time.Since(start); took > 8*time.Second {
			t.Errorf("%s: the call took %s; the timeout is 2s", what, took)
		}
		if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d, Retry-After %q, %s, want a 503 problem with Retry-After", what, code, hdr.Get("Retry-After"), hdr.Get("Content-Type"))
		}
		if detail, _ := body["detail"].(string); detail == "" || strings.Contains(detail, v.RootToken) {
			t.Errorf("%s: detail %q", what, detail)
		}
		if code := call(t, c, "GET", base+"/readyz", "", nil, nil); code != http.StatusServiceUnavailable {
			t.Errorf("%s: readyz %d, want 503", what, code)
		}
	}
	expectIssuing := func(what string) {
		t.Helper()
		testutil.Eventually(t, 20*time.Second, func() error {
			if code, _, _ := issue(); code != http.StatusOK {
				return fmt.Errorf("%s: issuing did not resume (last status %d)", what, code)
			}
			return nil
		})
	}

	register()
	expectIssuing("before the outage")

	v.Pause(t)
	expectOutage("vault frozen")
	v.Resume(t)
	expectIssuing("after vault thawed")

	v.Stop()
	expectOutage("vault killed")
	v.Restart(t)
	testutil.Eventually(t, 20*time.Second, func() error {
		if code := call(t, c, "GET", base+"/readyz", "", nil, nil); code != http.StatusOK {
			return fmt.Errorf("readyz did not recover after vault restarted: %d", code)
		}
		return nil
	})
	register() // the restarted dev server starts empty
	expectIssuing("after vault restarted")

	r.shutdown(t)
	if logs := r.stderr.String(); strings.Contains(logs, v.RootToken) {
		t.Error("logs contain the Vault token")
	}
}

// TestMain lets a test run this binary's main as a separate process: with
// CREDSIGN_TEST_MAIN=1 the test binary is credsign itself.
func TestMain(m *testing.M) {
	if os.Getenv("CREDSIGN_TEST_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// process is credsign serve running as a process of its own.
type process struct {
	cmd    *exec.Cmd
	base   string
	stderr *testutil.SyncBuffer
}

// startProcess runs `credsign serve args...` as a separate process (this
// test binary, see TestMain) with env added, and waits until it listens.
func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)...)
	cmd.Env = append(append(os.Environ(), "CREDSIGN_TEST_MAIN=1"), env...)
	p := &process{cmd: cmd, stderr: &testutil.SyncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	testutil.Eventually(t, 20*time.Second, func() error {
		m := listenLine.FindStringSubmatch(p.stderr.String())
		if m == nil {
			return fmt.Errorf("credsign serve did not listen:\n%s", p.stderr)
		}
		p.base = "http://" + m[1]
		return nil
	})
	return p
}

// TestServeReplicasShareVault runs two credsign processes on one real
// Vault, as two replicas would run. It measures the staleness bound the
// docs state: a revoke on replica A is honoured by A at once and by B
// within --cache-ttl, even when Vault freezes just after it; and while
// Vault is frozen, devices B's cache knows keep getting credentials for
// the admin, /readyz says degraded, and writes fail.
func TestServeReplicasShareVault(t *testing.T) {
	v := vaulttest.Start(t)
	const ttl = 2 * time.Second
	env := []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.RootToken, "CREDSIGN_ADMIN_TOKEN=" + srvAdmin, "CREDSIGN_VAULT_TIMEOUT=2s"}
	args := []string{"--rate-limit", "0", "--cache-ttl", ttl.String(), "--cache-stale", "1m"}
	a := startProcess(t, env, args...)
	b := startProcess(t, env, args...)
	c := &http.Client{Timeout: 20 * time.Second}

	doc := map[string]any{"cloud": "azure", "params": map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "d1"}, "secret": "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="}
	var toks [2]struct{ ID, Token string }
	for i, id := range []string{"d1", "d2"} {
		if code := call(t, c, "PUT", a.base+"/v1/devices/"+id, srvAdmin, doc, nil); code != 201 {
			t.Fatalf("put %s: %d", id, code)
		}
		if code := call(t, c, "POST", a.base+"/v1/devices/"+id+"/tokens", srvAdmin, nil, &toks[i]); code != 201 {
			t.Fatalf("token %s: %d", id, code)
		}
	}
	issue := func(p *process, i int) int {
		return call(t, c, "POST", p.base+"/v1/devices/"+[]string{"d1", "d2"}[i]+"/credentials", toks[i].Token, nil, nil)
	}
	for _, p := range []*process{a, b} {
		for i := range toks {
			if code := issue(p, i); code != 200 {
				t.Fatalf("warm %s: %d", p.base, code)
			}
		}
	}

	// Revoke d1's token on A: A refuses at once, B within the TTL.
	if code := call(t, c, "DELETE", a.base+"/v1/devices/d1/tokens/"+toks[0].ID, srvAdmin, nil, nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	revoked := time.Now()
	if code := issue(a, 0); code != 401 {
		t.Errorf("replica A after its own revoke: %d, want 401 at once", code)
	}
	testutil.Eventually(t, time.Until(revoked.Add(ttl+time.Second)), func() error {
		if issue(b, 0) != 401 {
			return fmt.Errorf("replica B still honours a token revoked on A %v ago (cache TTL %v)", time.Since(revoked), ttl)
		}
		return nil
	})
	t.Logf("replica B honoured the revoke after %v (bound: --cache-ttl %v)", time.Since(revoked).Round(time.Millisecond), ttl)

	// Revoke d2's token on A and freeze Vault at once: B refuses the token
	// within the TTL all the same (503 once it cannot vouch for it).
	if code := issue(b, 1); code != 200 {
		t.Fatalf("d2 on B: %d", code)
	}
	if code := call(t, c, "DELETE", a.base+"/v1/devices/d2/tokens/"+toks[1].ID, srvAdmin, nil, nil); code != 204 {
		t.Fatalf("revoke d2: %d", code)
	}
	revoked = time.Now()
	v.Pause(t)
	defer v.Resume(t)
	var code int
	var asked time.Duration
	testutil.Eventually(t, time.Until(revoked.Add(ttl)), func() error {
		if asked, code = time.Since(revoked), issue(b, 1); code == 200 {
			return fmt.Errorf("replica B served a token revoked on A %v earlier, Vault frozen since (cache TTL %v)", asked, ttl)
		}
		return nil
	})
	if code != 503 && code != 401 {
		t.Errorf("d2's revoked token on B with Vault frozen: %d, want 503 or 401", code)
	}
	t.Logf("replica B refused a token revoked on A just before Vault froze: %d to a request made %v after the revoke, answered after %v (bound: --cache-ttl %v; CREDSIGN_VAULT_TIMEOUT 2s)",
		code, asked.Round(time.Millisecond), time.Since(revoked).Round(time.Millisecond), ttl)

	// d2, known to B's cache, keeps getting credentials for the admin.
	time.Sleep(ttl) // every cached record is past its TTL: only the stale window serves
	start := time.Now()
	for i := 0; i < 5; i++ {
		if code := call(t, c, "POST", b.base+"/v1/devices/d2/credentials", srvAdmin, nil, nil); code != 200 {
			t.Errorf("d2 for the admin on B with Vault frozen: %d, want 200 from the cache", code)
		}
	}
	t.Logf("5 issuances from the cache with Vault frozen took %v", time.Since(start).Round(time.Millisecond))
	var h struct{ Status string }
	if code := call(t, c, "GET", b.base+"/readyz", "", nil, &h); code != 200 || h.Status != "degraded" {
		t.Errorf("readyz on B with Vault frozen: %d %q, want 200 degraded", code, h.Status)
	}
	if code := call(t, c, "PUT", b.base+"/v1/devices/d3", srvAdmin, doc, nil); code != 503 {
		t.Errorf("write with Vault frozen: %d, want 503", code)
	}
	for _, p := range []*process{a, b} {
		if logs := p.stderr.String(); strings.Contains(logs, v.RootToken) || strings.Contains(logs, toks[1].Token) {
			t.Error("a log holds the Vault token or a device token")
		}
	}
}

// TestServeRegistrationPolicyVault is TestServeRegistrationPolicy with a
// real Vault as the store.
func TestServeRegistrationPolicyVault(t *testing.T) {
	v := vaulttest.Start(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.RootToken)
	registrationPolicy(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin, "VAULT_ADDR": v.Addr})
}
