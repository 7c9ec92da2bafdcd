package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/credsign/credsign/internal/testing/testutil"
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
	// keyed is a device with a rotated secret, two keys and requireKey,
	// keyedKey the private half of its first key, keyedBearer a token
	// minted before it required keys.
	keyedKey    *ecdsa.PrivateKey
	keyedBearer string
	// rotatedOld is a named expiring token of device rotatedOf that the
	// device rotated into rotatedNew.
	rotatedOld, rotatedNew string
	// shortOld was rotated into shortNew by a server whose overlap is
	// 1s, at shortAt (see rotateShort): it stays refused wherever it goes.
	shortOld, shortNew string
	shortAt            time.Time
	// scoped is a named provisioner token scoped to the group lamps.
	scoped string
	// state is what the API shows of the records and listings (see
	// fleetState), as the last server left them.
	state map[string]string
}

const (
	keyed     = "keyed-1"
	rotatedOf = "dev-00001"
)

// overlapFlags give the servers of the fleet tests a rotation overlap
// long enough for the whole test, so that the rotated token works.
var overlapFlags = []string{"--rate-limit", "0", "--token-rotation-overlap", "1h"}

// statePaths are the documents and listings that must read the same
// after a move: the keyed device (secret version, keys, requireKey), the
// group requiring attestation, token listings of every kind (names,
// expiry, rotation, scope), enrolment tokens with their uses.
var statePaths = []string{
	"/v1/devices/" + keyed, "/v1/devices/" + keyed + "/keys", "/v1/groups/tpm-lamps", "/v1/groups/lamps",
	"/v1/devices/" + rotatedOf + "/tokens", "/v1/devices/" + keyed + "/tokens", "/v1/tokens", "/v1/groups/lamps/enrolment-tokens",
}

// fleetState reads statePaths on the server at base as admin, versions
// and ETags (each store's own) left out.
func fleetState(t *testing.T, base string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range statePaths {
		var doc any
		if code := call(t, http.DefaultClient, "GET", base+p, srvAdmin, nil, &doc); code != 200 {
			t.Fatalf("GET %s: %d", p, code)
		}
		b, _ := json.Marshal(dropVersions(doc))
		out[p] = string(b)
	}
	return out
}

// dropVersions removes every "version" member of a decoded JSON document.
func dropVersions(v any) any {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "version")
		for k, e := range v {
			v[k] = dropVersions(e)
		}
	case []any:
		for i, e := range v {
			v[i] = dropVersions(e)
		}
	}
	return v
}

// sameState fails the test for each document that reads differently.
func (f fleet) sameState(t *testing.T, base string) {
	t.Helper()
	got := fleetState(t, base)
	for _, p := range statePaths {
		if got[p] != f.state[p] {
			t.Errorf("GET %s:\n%s\nwant\n%s", p, got[p], f.state[p])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// proof is a DPoP proof (docs/devices.md) of a POST to url signed by k.
func proof(t *testing.T, k *ecdsa.PrivateKey, url string) string {
	t.Helper()
	jti := make([]byte, 16)
	rand.Read(jti)
	return testutil.SignES256(t, k, map[string]any{"alg": "ES256", "typ": "dpop+jwt", "jwk": jose.JSONWebKey{Key: &k.PublicKey}},
		map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti), "htm": "POST", "htu": url, "iat": time.Now().Unix()})
}

func (f fleet) issueWithProof(t *testing.T, base string) int {
	t.Helper()
	url := base + "/v1/devices/" + keyed + "/credentials"
	req, _ := http.NewRequest("POST", url, nil)
	req.Header.Set("DPoP", proof(t, f.keyedKey, url))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
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

	// The kinds and fields added since: a group requiring TPM attestation
	// and keys; a device with a bearer token, two keys, then a rotated
	// secret and requireKey; a named expiring token rotated by its device;
	// a scoped named provisioner token.
	mustCall(201, "PUT", "/v1/groups/tpm-lamps", f.prov, map[string]any{"cloud": "azure", "params": map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "{deviceId}"},
		"secret": "dHBtLWdyb3VwLWtleS1vZi10aGUtZml4dHVyZS0zMmJ5dGVz", "requireKey": true, "requireAttestation": "tpm"}, nil)
	keyedDoc := map[string]any{"cloud": "aliyun", "params": map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": keyed}, "secret": "first-secret"}
	mustCall(201, "PUT", "/v1/devices/"+keyed, f.prov, keyedDoc, nil)
	mustCall(201, "POST", "/v1/devices/"+keyed+"/tokens", f.prov, nil, &tok)
	f.keyedBearer = tok.Token
	for i := range 2 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			f.keyedKey = k
		}
		raw, _ := k.PublicKey.Bytes()
		jwk := map[string]string{"kty": "EC", "crv": "P-256", "x": base64.RawURLEncoding.EncodeToString(raw[1:33]), "y": base64.RawURLEncoding.EncodeToString(raw[33:])}
		mustCall(201, "POST", "/v1/devices/"+keyed+"/keys", f.prov, map[string]any{"jwk": jwk, "name": fmt.Sprintf("key %d", i)}, nil)
	}
	keyedDoc["secret"], keyedDoc["requireKey"] = "second-secret", true
	mustCall(200, "PUT", "/v1/devices/"+keyed, f.prov, keyedDoc, nil)
	mustCall(201, "POST", "/v1/devices/"+rotatedOf+"/tokens", f.prov, map[string]any{"name": "boot token", "ttlSeconds": 7 * 86400}, &tok)
	f.rotatedOld = tok.Token
	mustCall(201, "POST", "/v1/devices/"+rotatedOf+"/tokens/rotate", f.rotatedOld, nil, &tok)
	f.rotatedNew = tok.Token
	mustCall(201, "POST", "/v1/tokens", srvAdmin, map[string]any{"role": "provisioner", "name": "line 2", "scope": map[string]any{"groups": []string{"lamps"}}}, &tok)
	f.scoped = tok.Token
	f.state = fleetState(t, base)
	var dev map[string]any
	mustCall(200, "GET", "/v1/devices/"+keyed, f.prov, nil, &dev)
	if dev["secretVersion"] != 2.0 || dev["requireKey"] != true {
		t.Fatalf("the keyed device reads %v", dev)
	}
	return f
}

func jwks(t *testing.T, base string) []byte {
	t.Helper()
	_, _, b := testutil.Do(t, nil, http.MethodGet, base+"/.well-known/jwks.json", "", nil)
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
		{"rotated (within the overlap)", "POST", "/v1/devices/" + rotatedOf + "/credentials", f.rotatedOld, nil, 200},
		{"rotation's successor", "POST", "/v1/devices/" + rotatedOf + "/credentials", f.rotatedNew, nil, 200},
		{"bearer of a device requiring keys", "POST", "/v1/devices/" + keyed + "/credentials", f.keyedBearer, nil, 401},
		{"scoped, in scope", "GET", "/v1/devices/lamp-1", f.scoped, nil, 200},
		{"scoped, out of scope", "GET", "/v1/devices/dev-00001", f.scoped, nil, 404},
		{"scoped, other group", "GET", "/v1/groups/tpm-lamps", f.scoped, nil, 404},
	} {
		if code := call(t, c, c2.method, base+c2.path, c2.token, c2.body, nil); code != c2.want {
			t.Errorf("%s token: %d, want %d", c2.what, code, c2.want)
		}
	}
	if got := jwks(t, base); !bytes.Equal(got, f.jwks) {
		t.Errorf("JWKS differs:\n%s\nwant\n%s", got, f.jwks)
	}
	// Refused by 1.5s after its rotation, the overlap being 1s.
	if err := testutil.Poll(context.Background(), time.Until(f.shortAt.Add(1500*time.Millisecond)), func() error {
		if code := call(t, c, "POST", base+"/v1/devices/"+rotatedOf+"/credentials", f.shortOld, nil, nil); code != 401 {
			return fmt.Errorf("token rotated past its overlap: %d, want 401", code)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if code := call(t, c, "POST", base+"/v1/devices/"+rotatedOf+"/credentials", f.shortNew, nil, nil); code != 200 {
		t.Errorf("its successor: %d, want 200", code)
	}
	if code := f.issueWithProof(t, base); code != 200 {
		t.Errorf("the keyed device with a proof of its key: %d", code)
	}
	var page struct{ Devices []struct{ ID, Group string } }
	if code := call(t, c, "GET", base+"/v1/devices", f.scoped, nil, &page); code != 200 || len(page.Devices) == 0 {
		t.Errorf("scoped listing: %d, %d devices", code, len(page.Devices))
	}
	for _, d := range page.Devices {
		if d.Group != "lamps" {
			t.Errorf("the scoped token lists %s of group %q", d.ID, d.Group)
		}
	}
}

// rotateShort starts a server on the store (env and args as for
// startServe) with a rotation overlap of 1s, mints a token for rotatedOf
// and has the device rotate it, reads the fleet's state and stops the
// server.
func (f *fleet) rotateShort(t *testing.T, env map[string]string, args ...string) {
	t.Helper()
	srv := startServe(t, env, append(args, "--rate-limit", "0", "--token-rotation-overlap", "1s")...)
	base := "http://" + srv.addr
	var tok struct{ Token string }
	if code := call(t, http.DefaultClient, "POST", base+"/v1/devices/"+rotatedOf+"/tokens", f.prov, map[string]any{"name": "short overlap", "ttlSeconds": 2 * 86400}, &tok); code != 201 {
		t.Fatalf("mint: %d", code)
	}
	f.shortOld = tok.Token
	if code := call(t, http.DefaultClient, "POST", base+"/v1/devices/"+rotatedOf+"/tokens/rotate", f.shortOld, nil, &tok); code != 201 {
		t.Fatalf("rotate: %d", code)
	}
	f.shortNew, f.shortAt = tok.Token, time.Now()
	f.state = fleetState(t, base)
	srv.shutdown(t)
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
	srv := startServe(t, fileEnv, append([]string{"--data-dir", dir}, overlapFlags...)...)
	f := makeFleet(t, "http://"+srv.addr, 200)
	srv.shutdown(t)
	f.rotateShort(t, fileEnv, "--data-dir", dir)

	code, out, errOut := cli(t, "migrate", "--from", "file:"+dir, "--to", "vault", "--dry-run")
	if code != 0 || !strings.Contains(out, "devices       202      202        0") {
		t.Fatalf("dry run: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "migrate", "--from", "file:"+dir, "--to", "vault", "--dry-run")
	if code != 0 || !strings.Contains(out, "devices       202      202        0") {
		t.Fatalf("dry run wrote something: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "migrate", "--from", "file:"+dir, "--to", "vault")
	if code != 0 {
		t.Fatalf("migrate to vault: %d\n%s%s", code, out, errOut)
	}
	t.Logf("file -> vault:\n%s", out)
	code, out, errOut = cli(t, "migrate", "--from", "file:"+dir, "--to", "vault")
	if code != 0 || !strings.Contains(out, "devices       202        0      202") {
		t.Fatalf("second run: %d\n%s%s", code, out, errOut)
	}

	srv = startServe(t, vaultEnv, append([]string{"--store", "vault"}, overlapFlags...)...)
	base := "http://" + srv.addr
	f.sameState(t, base)
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
	f.state = fleetState(t, base)
	srv.shutdown(t)

	// Back into the same directory: dev-00002 differs (a conflict), and
	// so does the enrolment token's record (its use count went up on
	// Vault); the rest is copied or the same.
	code, out, errOut = cli(t, "migrate", "--from", "vault", "--to", "file:"+dir)
	if code != 1 || !strings.Contains(errOut, "2 records differ") || !strings.Contains(out, "devices       204        2      201        0         1") {
		t.Fatalf("back without --force: %d, want 1 and a conflict\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "migrate", "--from", "vault", "--to", "file:"+dir, "--force")
	if code != 0 || !strings.Contains(out, "devices       204        0      203        1         0") || !strings.Contains(out, "keys            8        0        7        1         0") {
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
		srv = startServe(t, fileEnv, append([]string{"--data-dir", d}, overlapFlags...)...)
		f.sameState(t, "http://"+srv.addr)
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
