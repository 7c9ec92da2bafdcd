package main

import (
	"net/http"
	"strings"
	"testing"

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
