package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/vaulttest"
)

// fleet is what a test puts in a store through a running server: devices
// of their own and of a group, every kind of token, revoked ones, and a
// rotated JWT key ring.
type fleet struct {
	prov, revokedProv     string
	enrol, revokedEnrol   string
	devTokens             map[string]string // device ID → its token
	revokedDev, revokedOf string
	jwks                  []byte
}

// makeFleet creates the fleet through the server at base, n devices.
func makeFleet(t *testing.T, base string, n int) fleet {
	t.Helper()
	c := http.DefaultClient
	f := fleet{devTokens: map[string]string{}}
	var tok struct{ ID, Token string }
	mustCall := func(want int, method, path, token string, body any, out any) {
		t.Helper()
		if code := call(t, c, method, base+path, token, body, out); code != want {
			t.Fatalf("%s %s: %d, want %d", method, path, code, want)
		}
	}
	mustCall(201, "POST", "/v1/tokens", srvAdmin, map[string]string{"role": "provisioner"}, &tok)
	f.prov = tok.Token
	mustCall(201, "POST", "/v1/tokens", srvAdmin, map[string]string{"role": "provisioner"}, &tok)
	f.revokedProv = tok.Token
	mustCall(204, "DELETE", "/v1/tokens/"+tok.ID, srvAdmin, nil, nil)
	group := map[string]any{"cloud": "azure", "params": map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "{deviceId}"},
		"secret": "Z3JvdXAta2V5LW9mLXRoZS1maXh0dXJlLTMyYnl0ZXM="}
	mustCall(201, "PUT", "/v1/groups/lamps", f.prov, group, nil)
	mustCall(201, "POST", "/v1/groups/lamps/enrolment-tokens", f.prov, map[string]any{"maxUses": 100, "ttlSeconds": 3600}, &tok)
	f.enrol = tok.Token
	mustCall(201, "POST", "/v1/groups/lamps/enrolment-tokens", f.prov, map[string]any{"maxUses": 1, "ttlSeconds": 3600}, &tok)
	f.revokedEnrol = tok.Token
	mustCall(204, "DELETE", "/v1/groups/lamps/enrolment-tokens/"+tok.ID, f.prov, nil, nil)
	var imp strings.Builder
	for i := range n {
		fmt.Fprintf(&imp, `{"id":"dev-%05d","cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"dev-%05d"},"secret":"secret-%05d","labels":{"site":"sz"}}`+"\n", i, i, i)
	}
	req, _ := http.NewRequest("POST", base+"/v1/imports?tokens=true", strings.NewReader(imp.String()))
	req.Header.Set("Authorization", "Bearer "+f.prov)
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
		var l struct {
			ID, Token string
			Status    int
		}
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatal(err)
		}
		if l.ID != "" {
			if l.Status != 201 {
				t.Fatalf("import: %s", line)
			}
			f.devTokens[l.ID] = l.Token
		}
	}
	// A device of the group, enrolled with its enrolment token.
	var enrolled struct{ DeviceID, Token string }
	mustCall(201, "POST", "/v1/enrol", f.enrol, map[string]any{"deviceId": "lamp-1"}, &enrolled)
	f.devTokens["lamp-1"] = enrolled.Token
	mustCall(201, "POST", "/v1/devices/dev-00000/tokens", f.prov, nil, &tok)
	f.revokedDev, f.revokedOf = tok.Token, "dev-00000"
	mustCall(204, "DELETE", "/v1/devices/dev-00000/tokens/"+tok.ID, f.prov, nil, nil)
	mustCall(200, "POST", "/v1/keys/jwt/rotate", srvAdmin, nil, nil)
	f.jwks = jwks(t, base)
	return f
}

func jwks(t *testing.T, base string) []byte {
	t.Helper()
	res, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return b
}

// check asserts that every token of the fleet works on the server at base
// as it did where it was made: each device issues with its own token,
// the provisioner and enrolment tokens are accepted, revoked ones are not,
// and the JWKS is the same.
func (f fleet) check(t *testing.T, base, newDevice string) {
	t.Helper()
	c := http.DefaultClient
	failed := 0
	for id, tok := range f.devTokens {
		if code := call(t, c, "POST", base+"/v1/devices/"+id+"/credentials", tok, nil, nil); code != 200 {
			failed++
			if failed < 5 {
				t.Errorf("device %s issues: %d", id, code)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d devices do not issue", failed, len(f.devTokens))
	}
	for _, c2 := range []struct {
		what, method, path, token string
		body                      any
		want                      int
	}{
		{"provisioner", "GET", "/v1/devices/dev-00001", f.prov, nil, 200},
		{"enrolment", "POST", "/v1/enrol", f.enrol, map[string]any{"deviceId": newDevice}, 201},
		{"revoked provisioner", "GET", "/v1/clouds", f.revokedProv, nil, 401},
		{"revoked enrolment", "POST", "/v1/enrol", f.revokedEnrol, map[string]any{"deviceId": newDevice + "-x"}, 401},
		{"revoked device", "POST", "/v1/devices/" + f.revokedOf + "/credentials", f.revokedDev, nil, 401},
	} {
		if code := call(t, c, c2.method, base+c2.path, c2.token, c2.body, nil); code != c2.want {
			t.Errorf("%s token: %d, want %d", c2.what, code, c2.want)
		}
	}
	if got := jwks(t, base); !bytes.Equal(got, f.jwks) {
		t.Errorf("JWKS differs:\n%s\nwant\n%s", got, f.jwks)
	}
}

// cli runs a credsign command and returns its exit status and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	out, errOut, code := runCLI(t, "", args...)
	return code, out, errOut
}

// TestMigrateFileVaultAndBack moves a file store with devices, a group,
// every kind of token and a rotated key ring to a real Vault and back,
// and checks after each move, through a server on the destination, that
// every token works as before. A dry run writes nothing; a second run
// copies nothing; a record changed at the destination is a conflict that
// --force resolves.
func TestMigrateFileVaultAndBack(t *testing.T) {
	v := vaulttest.Start(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.RootToken)
	fileEnv := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}
	vaultEnv := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin, "VAULT_ADDR": v.Addr}
	dir := t.TempDir()
	srv := startServe(t, fileEnv, "--data-dir", dir, "--rate-limit", "0")
	f := makeFleet(t, "http://"+srv.addr, 200)
	srv.shutdown(t)

	code, out, errOut := cli(t, "migrate", "--from", "file:"+dir, "--to", "vault", "--dry-run")
	if code != 0 || !strings.Contains(out, "devices       201      201        0") {
		t.Fatalf("dry run: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "migrate", "--from", "file:"+dir, "--to", "vault", "--dry-run")
	if code != 0 || !strings.Contains(out, "devices       201      201        0") {
		t.Fatalf("dry run wrote something: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "migrate", "--from", "file:"+dir, "--to", "vault")
	if code != 0 {
		t.Fatalf("migrate to vault: %d\n%s%s", code, out, errOut)
	}
	t.Logf("file -> vault:\n%s", out)
	code, out, errOut = cli(t, "migrate", "--from", "file:"+dir, "--to", "vault")
	if code != 0 || !strings.Contains(out, "devices       201        0      201") {
		t.Fatalf("second run: %d\n%s%s", code, out, errOut)
	}

	srv = startServe(t, vaultEnv, "--store", "vault", "--rate-limit", "0")
	base := "http://" + srv.addr
	f.check(t, base, "lamp-on-vault")
	// Changes made on Vault: a new device with its token, a revocation, a
	// device changed (so the copy back differs from what dir holds).
	var tok struct{ ID, Token string }
	if code := call(t, http.DefaultClient, "PUT", base+"/v1/devices/vault-only", f.prov, map[string]any{"cloud": "huawei", "params": map[string]any{"deviceId": "p_1"}, "secret": "vault-only-secret"}, nil); code != 201 {
		t.Fatalf("put on vault: %d", code)
	}
	if code := call(t, http.DefaultClient, "POST", base+"/v1/devices/vault-only/tokens", f.prov, nil, &tok); code != 201 {
		t.Fatalf("token on vault: %d", code)
	}
	f.devTokens["vault-only"] = tok.Token
	if code := call(t, http.DefaultClient, "PUT", base+"/v1/devices/dev-00002", f.prov, map[string]any{"cloud": "aliyun", "params": map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": "dev-00002"}, "secret": "rotated-secret"}, nil); code != 200 {
		t.Fatalf("replace on vault: %d", code)
	}
	srv.shutdown(t)

	// Back into the same directory: dev-00002 differs (a conflict), and
	// so does the enrolment token's record (its use count went up on
	// Vault); the rest is copied or the same.
	code, out, errOut = cli(t, "migrate", "--from", "vault", "--to", "file:"+dir)
	if code != 1 || !strings.Contains(errOut, "2 records differ") || !strings.Contains(out, "devices       203        2      200        0         1") {
		t.Fatalf("back without --force: %d, want 1 and a conflict\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "migrate", "--from", "vault", "--to", "file:"+dir, "--force")
	if code != 0 || !strings.Contains(out, "devices       203        0      202        1         0") || !strings.Contains(out, "keys            5        0        4        1         0") {
		t.Fatalf("back with --force: %d\n%s%s", code, out, errOut)
	}
	// And into a new directory.
	dir2 := t.TempDir()
	code, out, errOut = cli(t, "migrate", "--from", "vault", "--to", "file:"+dir2)
	if code != 0 {
		t.Fatalf("vault -> new dir: %d\n%s%s", code, out, errOut)
	}
	t.Logf("vault -> file:\n%s", out)
	for _, d := range []string{dir, dir2} {
		srv = startServe(t, fileEnv, "--data-dir", d, "--rate-limit", "0")
		f.check(t, "http://"+srv.addr, "lamp-back")
		srv.shutdown(t)
	}
}

// TestMigrateUsage: bad invocations are one line and exit 2, changing
// nothing.
func TestMigrateUsage(t *testing.T) {
	for _, args := range [][]string{
		{"migrate"},
		{"migrate", "--from", "file:x"},
		{"migrate", "--from", "s3:x", "--to", "vault"},
		{"migrate", "--from", "vault", "--to", "vault"},
		{"migrate", "--from", "vault", "--to", "file:x", "--from-key-file", "k"},
		{"migrate", "--from", "file:a", "--to", "file:b", "extra"},
		{"migrate", "--from", "file:a", "--to", "file:b", "--parallel", "0"},
	} {
		code, out, errOut := cli(t, args...)
		if code != exitUsage || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// TestNoStoreNoCopy: a source directory without a store (a mistyped path)
// is refused, not opened as a new empty store and copied.
func TestNoStoreNoCopy(t *testing.T) {
	empty, dst := t.TempDir(), t.TempDir()
	for _, args := range [][]string{
		{"migrate", "--from", "file:" + empty, "--to", "file:" + dst},
		{"backup", "--data-dir", empty, "-o", dst + "/b.db"},
	} {
		code, _, errOut := cli(t, args...)
		if code != exitError || !strings.Contains(errOut, "holds no store") {
			t.Errorf("%q: exit %d, %s", args, code, errOut)
		}
	}
	for _, d := range []string{empty, dst} {
		if entries, _ := os.ReadDir(d); len(entries) != 0 {
			t.Errorf("%s: %d files created", d, len(entries))
		}
	}
}
