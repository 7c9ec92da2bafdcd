// Package upgrade holds the upgrade test: the data that a previous release
// wrote in each store (fixtures made by that release's own binary with
// scripts/upgrade-fixtures.sh, kept under testdata/<tag>) opens under this
// build, migrates if it must, and serves every device and every token kind;
// a store written by a newer release is refused and left untouched.
package upgrade

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/internal/testing/vaulttest"
)

// releases are the tags whose data this build must open. The newest
// tagged release is always here; older ones stay while their layout is
// still migrated.
var releases = []string{"v0.4.0"}

// binary is the credsign under test, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "credsign-upgrade")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "credsign")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/credsign/credsign/cmd/credsign").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build credsign: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// manifest is what the old release handed out while writing the fixture.
type manifest struct {
	Admin       string            `json:"admin"`
	Provisioner string            `json:"provisioner"`
	Enrolment   string            `json:"enrolment"`
	Devices     map[string]string `json:"devices"` // device ID → its device token
	Kids        []string          `json:"kids"`    // the JWT key ring's key IDs
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// copyDir copies the fixture's files, so that the test never changes them.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// serve runs this build's `credsign serve` with args and env and returns its
// base URL; the server is stopped when the test ends.
func serve(t *testing.T, env []string, args ...string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		logFile.Close()
	})
	listening := regexp.MustCompile(`"addr":"([^"]+)".*"message":"listening"`)
	var addr string
	testutil.Eventually(t, 20*time.Second, func() error {
		b, _ := os.ReadFile(logPath)
		select {
		case err := <-exited:
			t.Fatalf("credsign serve exited (%v):\n%s", err, b)
		default:
		}
		m := listening.FindSubmatch(b)
		if m == nil {
			return fmt.Errorf("credsign serve did not start:\n%s", b)
		}
		addr = "http://" + string(m[1])
		return nil
	})
	return addr
}

// refused runs `credsign serve` expecting it to exit with an error, and
// returns its log.
func refused(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("credsign serve did not refuse the store (err %v):\n%s", err, out)
	}
	return string(out)
}

// call sends body, a JSON text (none when empty), with token as its bearer.
func call(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	var b any
	if body != "" {
		b = json.RawMessage(body)
	}
	code, _, out := testutil.Do(t, nil, method, url, token, b)
	return code, out
}

// serves checks that everything the old release handed out works on base.
func serves(t *testing.T, base string, m manifest) {
	t.Helper()
	for id, tok := range m.Devices {
		code, body := call(t, "POST", base+"/v1/devices/"+id+"/credentials", tok, "")
		if code != http.StatusOK {
			t.Errorf("%s's device token: credentials answered %d: %s", id, code, body)
			continue
		}
		var c struct {
			DeviceID string `json:"deviceId"`
			Password string `json:"password"`
		}
		if err := json.Unmarshal(body, &c); err != nil || c.DeviceID != id || c.Password == "" {
			t.Errorf("%s: credentials %s (%v)", id, body, err)
		}
	}
	code, body := call(t, "GET", base+"/v1/devices?limit=100", m.Provisioner, "")
	var list struct {
		Devices []struct {
			ID string `json:"id"`
		} `json:"devices"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Devices) != len(m.Devices) {
		t.Errorf("provisioner token: device list answered %d with %d devices, want %d: %s", code, len(list.Devices), len(m.Devices), body)
	}
	if code, body := call(t, "GET", base+"/v1/groups/lamps", m.Admin, ""); code != http.StatusOK {
		t.Errorf("admin token: group lamps answered %d: %s", code, body)
	}
	// The enrolment token enrols one more device, whose token then works.
	code, body = call(t, "POST", base+"/v1/enrol", m.Enrolment, `{"deviceId":"lamp-002"}`)
	var enrolled struct {
		Token string `json:"token"`
	}
	if code != http.StatusCreated || json.Unmarshal(body, &enrolled) != nil {
		t.Fatalf("enrolment token: enrol answered %d: %s", code, body)
	}
	if code, body := call(t, "POST", base+"/v1/devices/lamp-002/credentials", enrolled.Token, ""); code != http.StatusOK {
		t.Errorf("enrolled device: credentials answered %d: %s", code, body)
	}
	// The JWT key ring still holds every key the old release signed with.
	code, body = call(t, "GET", base+"/.well-known/jwks.json", "", "")
	for _, kid := range m.Kids {
		if code != http.StatusOK || !bytes.Contains(body, []byte(`"`+kid+`"`)) {
			t.Errorf("JWKS (%d) lacks the old release's key %s: %s", code, kid, body)
		}
	}
}

// listsTokens asserts that the old release's tokens are listed under
// their owners after the upgrade (each store indexes the tokens by owner
// since; the old release wrote no index, so the new one builds it from
// the records): every device of m lists tokens of its own, the
// provisioner listing is not empty, and, when want is given (owner:
// "device ID" or "provisioner" → token IDs), the listings are exactly want
// (read before the test mints any).
func listsTokens(t *testing.T, base string, m manifest, want map[string][]string) {
	t.Helper()
	owners := map[string]string{"provisioner": "/v1/tokens"}
	for id := range m.Devices {
		owners[id] = "/v1/devices/" + id + "/tokens"
	}
	for owner, path := range owners {
		token := m.Provisioner
		if owner == "provisioner" {
			token = m.Admin // provisioner tokens are the admin's to list
		}
		code, body := call(t, "GET", base+path, token, "")
		var list struct {
			Tokens []struct {
				ID       string `json:"id"`
				DeviceID string `json:"deviceId"`
			} `json:"tokens"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Tokens) == 0 {
			t.Errorf("%s's tokens: %d, %s", owner, code, body)
			continue
		}
		var ids []string
		for _, tok := range list.Tokens {
			if owner != "provisioner" && tok.DeviceID != owner {
				t.Errorf("%s's listing holds a token of %q", owner, tok.DeviceID)
			}
			ids = append(ids, tok.ID)
		}
		if w, ok := want[owner]; want != nil && (!ok || !slices.Equal(ids, w)) {
			t.Errorf("%s's tokens are %v, want %v", owner, ids, w)
		}
	}
}

// fixtureTokens is the owner → token IDs (sorted) of a Vault fixture's
// token records.
func fixtureTokens(f vaultFixture) map[string][]string {
	want := map[string][]string{}
	for rel, data := range f.Records {
		if !strings.HasPrefix(rel, "tokens/by-hash/") {
			continue
		}
		owner := "provisioner"
		if data["role"] == "device" {
			owner = fmt.Sprint(data["deviceId"])
		}
		want[owner] = append(want[owner], fmt.Sprint(data["id"]))
	}
	for _, ids := range want {
		slices.Sort(ids)
	}
	return want
}

func TestFileStoreFromRelease(t *testing.T) {
	for _, rel := range releases {
		t.Run(rel, func(t *testing.T) {
			var m manifest
			readJSON(t, filepath.Join("testdata", rel, "manifest.json"), &m)
			dir := copyDir(t, filepath.Join("testdata", rel, "file"))
			base := serve(t, []string{"CREDSIGN_ADMIN_TOKEN=" + m.Admin}, "--store", "file", "--data-dir", dir)
			listsTokens(t, base, m, nil)
			serves(t, base, m)
		})
	}
}

// TestFileStoreFromNewerReleaseRefused: a data file whose layout is newer
// than this build's is refused with a message that says so, and its bytes
// stay as they were.
func TestFileStoreFromNewerReleaseRefused(t *testing.T) {
	dir := copyDir(t, filepath.Join("testdata", releases[len(releases)-1], "file"))
	db := filepath.Join(dir, "store.db")
	b, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("99")) })
	if cerr := b.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	before := digest(t, db)
	out := refused(t, []string{"CREDSIGN_ADMIN_TOKEN=csa_upgrade_fixture_admin_token_0123456789"}, "--store", "file", "--data-dir", dir)
	if !strings.Contains(out, "format version 99") || !strings.Contains(out, "downgrade refused") {
		t.Errorf("the refusal does not say why:\n%s", out)
	}
	if digest(t, db) != before {
		t.Error("the refused data file was changed")
	}
}

func digest(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// vaultFixture is a release's Vault records (paths under the prefix) and
// what it handed out.
type vaultFixture struct {
	Manifest manifest                  `json:"manifest"`
	Records  map[string]map[string]any `json:"records"`
}

// loadVault writes the fixture's records into a fresh Vault, as that
// release left them (a KV version each; the versions themselves restart).
func loadVault(t *testing.T, v *vaulttest.Server, f vaultFixture) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = v.Addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.RootToken)
	for rel, data := range f.Records {
		if _, err := c.KVv2("secret").Put(context.Background(), "credsign/"+rel, data); err != nil {
			t.Fatalf("load %s: %v", rel, err)
		}
	}
	return c
}

func vaultEnv(v *vaulttest.Server, admin string) []string {
	return []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.RootToken, "CREDSIGN_ADMIN_TOKEN=" + admin}
}

func TestVaultFromRelease(t *testing.T) {
	for _, rel := range releases {
		t.Run(rel, func(t *testing.T) {
			var f vaultFixture
			readJSON(t, filepath.Join("testdata", rel, "vault-kv.json"), &f)
			v := vaulttest.Start(t)
			c := loadVault(t, v, f)
			base := serve(t, vaultEnv(v, f.Manifest.Admin), "--store", "vault")
			listsTokens(t, base, f.Manifest, fixtureTokens(f))
			serves(t, base, f.Manifest)
			if idx, err := c.KVv2("secret").Get(context.Background(), "credsign/tokens/owners-indexed"); err != nil || idx == nil {
				t.Errorf("the owner index is not marked complete after the upgrade: %v", err)
			}
			layout, err := c.KVv2("secret").Get(context.Background(), "credsign/meta/layout")
			if err != nil || fmt.Sprint(layout.Data["format"]) != "1" {
				t.Errorf("the layout record after the upgrade: %v, %v", layout, err)
			}
		})
	}
}

func TestVaultFromNewerReleaseRefused(t *testing.T) {
	var f vaultFixture
	readJSON(t, filepath.Join("testdata", releases[len(releases)-1], "vault-kv.json"), &f)
	v := vaulttest.Start(t)
	c := loadVault(t, v, f)
	kv := c.KVv2("secret")
	if _, err := kv.Put(context.Background(), "credsign/meta/layout", map[string]any{"format": 99}); err != nil {
		t.Fatal(err)
	}
	before, err := kv.GetMetadata(context.Background(), "credsign/devices/ali-1")
	if err != nil {
		t.Fatal(err)
	}
	out := refused(t, vaultEnv(v, f.Manifest.Admin), "--store", "vault")
	if !strings.Contains(out, "layout version 99") || !strings.Contains(out, "downgrade refused") {
		t.Errorf("the refusal does not say why:\n%s", out)
	}
	after, err := kv.GetMetadata(context.Background(), "credsign/devices/ali-1")
	if err != nil || after.CurrentVersion != before.CurrentVersion {
		t.Errorf("a refused store was written: version %d → %v (%v)", before.CurrentVersion, after, err)
	}
	if l, err := kv.Get(context.Background(), "credsign/meta/layout"); err != nil || fmt.Sprint(l.Data["format"]) != "99" {
		t.Errorf("the newer layout record was changed: %v, %v", l, err)
	}
}
