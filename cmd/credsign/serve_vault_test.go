package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/vaulttest"
)

// TestServeVault runs the server against a real Vault dev server: with
// VAULT_ADDR set and no --store, Vault is the store. It walks the flow and
// checks that neither the Vault token nor anything secret reaches the logs.
func TestServeVault(t *testing.T) {
	v := vaulttest.Start(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.RootToken)
	env := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin, "VAULT_ADDR": v.Addr}
	r := startServe(t, env)
	if !strings.Contains(r.stderr.String(), `"store":"vault"`) {
		t.Fatalf("VAULT_ADDR set but the store is not vault:\n%s", r.stderr)
	}
	base := "http://" + r.addr
	c := http.DefaultClient
	if code := call(t, c, "GET", base+"/readyz", "", nil, nil); code != 200 {
		t.Errorf("readyz: %d", code)
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
	env := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin, "VAULT_ADDR": v.Addr}
	r := startServe(t, env, "--rate-limit", "0")
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
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, _, _ := issue()
			if code == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: issuing did not resume (last status %d)", what, code)
			}
			time.Sleep(200 * time.Millisecond)
		}
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
	deadline := time.Now().Add(20 * time.Second)
	for call(t, c, "GET", base+"/readyz", "", nil, nil) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("readyz did not recover after vault restarted")
		}
		time.Sleep(200 * time.Millisecond)
	}
	register() // the restarted dev server starts empty
	expectIssuing("after vault restarted")

	r.shutdown(t)
	if logs := r.stderr.String(); strings.Contains(logs, v.RootToken) {
		t.Error("logs contain the Vault token")
	}
}
