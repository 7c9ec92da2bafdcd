package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/service"
)

// TestEnrolWithKeyThenPublish: enrol creates the device key file (0600)
// and binds the key, no token is written; pub and creds then sign a proof
// with it on every call; a removed key is refused in one line that says so;
// keygen prints a key a provisioner binds.
func TestEnrolWithKeyThenPublish(t *testing.T) {
	f := newEnrolFixture(t)
	ctx := testCtx(t)
	const id = "lamp-101"
	if err := f.emu.AddDevice(map[string]string{"hubHost": "hub.azure-devices.net", "deviceId": id}, derive(t, f.groupKey, id)); err != nil {
		t.Fatal(err)
	}
	_, _, tokFile := f.mint(map[string]any{"maxUses": 5, "ttlSeconds": 3600})
	keyFile := filepath.Join(f.dir, "device.key")
	base := map[string]string{"CREDSIGN_SERVER": f.url, "CREDSIGN_DEVICE": id, "CREDSIGN_KEY_FILE": keyFile}
	r := runWith(ctx, nil, env(base), "enrol", "--enrolment-token-file", tokFile, "--timeout", "20s")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "enrolled "+id+" in group lamps; device key ") || r.stderr != "" {
		t.Fatalf("enrol: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	pemBytes, _ := os.ReadFile(keyFile)
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatal("the key file is not PKCS#8 PEM")
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Fatal(err)
	}
	var keys struct {
		Keys []struct{ Kid string }
	}
	f.call("GET", "/v1/devices/"+id+"/keys", nil, 200, &keys)
	if len(keys.Keys) != 1 || !strings.Contains(r.stdout, keys.Keys[0].Kid) {
		t.Fatalf("keys %+v, enrol said %q", keys, r.stdout)
	}
	pub := func(msg string) result {
		return runWith(ctx, nil, env(base), "pub", "--broker-ca-file", f.caFile, "-t", "devices/"+id+"/messages/events/", "-m", msg, "--timeout", "20s")
	}
	if r := pub("signed"); r.code != 0 {
		t.Fatalf("pub with the key: exit %d: %s", r.code, r.stderr)
	}
	if _, err := f.emu.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) == 1 }); err != nil {
		t.Fatal(err)
	}
	if r := runWith(ctx, nil, env(base), "creds", "--timeout", "20s"); r.code != 0 || !strings.Contains(r.stdout, `"password"`) {
		t.Fatalf("creds with the key: exit %d: %s", r.code, r.stderr)
	}
	// The server logged no private key material, and no token was written.
	if strings.Contains(f.logs.String(), strings.TrimSpace(string(pemBytes))) {
		t.Error("the key appears in the server log")
	}
	if entries, _ := os.ReadDir(f.dir); len(entries) != 3 { // ca.pem, the enrolment token, the key
		t.Errorf("files in %s: %v", f.dir, entries)
	}
	// keygen: a second key, bound by the provisioner, then the first removed.
	key2 := filepath.Join(f.dir, "second.key")
	r = runWith(ctx, nil, env(map[string]string{}), "keygen", "--key-file", key2)
	var kg struct {
		Kid string
		JWK json.RawMessage
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &kg) != nil || len(kg.Kid) != 43 {
		t.Fatalf("keygen: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	var added struct{ Kid string }
	f.call("POST", "/v1/devices/"+id+"/keys", map[string]any{"jwk": kg.JWK}, 201, &added)
	if added.Kid != kg.Kid {
		t.Fatalf("the server's kid %q, keygen's %q", added.Kid, kg.Kid)
	}
	f.call("DELETE", "/v1/devices/"+id+"/keys/"+keys.Keys[0].Kid, nil, 204, nil)
	r = runWith(ctx, nil, env(base), "creds", "--timeout", "20s")
	if r.code != 1 {
		t.Fatalf("creds with a removed key: exit %d", r.code)
	}
	oneLine(t, r.stderr, "credsign answered 401", "proof refused (unknown-key)", "not bound to this device")
	base["CREDSIGN_KEY_FILE"] = key2
	if r := runWith(ctx, nil, env(base), "creds", "--timeout", "20s"); r.code != 0 {
		t.Fatalf("creds with the second key: exit %d: %s", r.code, r.stderr)
	}
}

// TestKeyNonce: against a server that requires its nonce in proofs, the
// agent's first proof is refused (use-nonce) and the second, carrying the
// nonce of that answer, is accepted: one command, exit 0.
func TestKeyNonce(t *testing.T) {
	f := newServerFixture(t, func(c *service.Config) { c.RequireDPoPNonce = true })
	f.call("PUT", "/v1/devices/n1", map[string]any{"cloud": "azure", "params": map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "n1"},
		"secret": "c2VjcmV0LWtleS0xMjM0NTY3ODkw"}, 201, nil)
	keyFile := filepath.Join(f.dir, "n1.key")
	ctx := testCtx(t)
	r := runWith(ctx, nil, env(map[string]string{}), "keygen", "--key-file", keyFile)
	var kg struct {
		Kid string
		JWK json.RawMessage
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &kg) != nil {
		t.Fatalf("keygen: %d %q", r.code, r.stderr)
	}
	f.call("POST", "/v1/devices/n1/keys", map[string]any{"jwk": kg.JWK}, 201, nil)
	r = runWith(ctx, nil, env(map[string]string{"CREDSIGN_SERVER": f.url, "CREDSIGN_DEVICE": "n1", "CREDSIGN_KEY_FILE": keyFile}), "creds", "--timeout", "20s")
	if r.code != 0 {
		t.Fatalf("creds: exit %d: %s", r.code, r.stderr)
	}
	if n401, n200 := strings.Count(f.logs.String(), `"status":401`), strings.Count(f.logs.String(), `"status":200`); n401 != 1 || n200 < 1 {
		t.Errorf("want one refusal (use-nonce) then success; the log has %d 401s and %d 200s", n401, n200)
	}
}
