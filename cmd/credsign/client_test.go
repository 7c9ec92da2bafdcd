package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// clientCLI runs credsign with args against server, the admin token in
// CREDSIGN_TOKEN (unless env sets it otherwise).
func clientCLI(t *testing.T, stdin string, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for _, k := range []string{"CREDSIGN_SERVER", "CREDSIGN_URL", "CREDSIGN_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("CREDSIGN_TOKEN", importAdmin)
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// TestClientCommands drives the client commands as a script would,
// against a real server: every verb, its table and its --json, and the
// exit status and one-line message of each kind of refusal.
func TestClientCommands(t *testing.T) {
	url := importServer(t)
	write := func(name, body string) string { return testutil.WriteFile(t, name, []byte(body)) }
	const secret = "0123456789abcdef0123456789abcdef"
	dev := func(name, site string) string {
		return write(name+".json", `{"cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"`+name+`"},"secret":"`+secret+`","labels":{"site":"`+site+`"}}`)
	}
	group := write("group.json", `{"cloud":"azure","params":{"hubHost":"hub.azure-devices.net","deviceId":"{deviceId}"},"secret":"8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==","labels":{"site":"sz"}}`)
	bad := write("bad.json", `{"cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F"},"secret":"`+secret+`"}`)
	adminFile := write("admin.token", importAdmin+"\n")
	relabel := write("relabel.json", `{"labels":{"site":"bj","row":"3"}}`)
	badPatch := write("bad-patch.json", `{"cloud":"tencent"}`)
	secretPatch := write("secret-patch.json", `{"secret":"`+secret+`"}`)
	groupPatch := write("group-patch.json", `{"labels":{"owner":"team-b"}}`)
	sameSecret := write("same.secret", secret+"\n")
	const newSecret = "fedcba9876543210fedcba9876543210"
	newSecretFile := write("new.secret", newSecret+"\n")
	s := "--server=" + url

	type want struct {
		code   int
		stdout []string // each must appear
		stderr string   // must appear (and stderr is one line) when not empty
		json   bool     // stdout is one JSON document
		absent []string // none may appear in stdout
	}
	steps := []struct {
		name string
		env  map[string]string
		args []string
		want want
	}{
		{"put lamp-1", nil, []string{"devices", "put", s, "--file", dev("lamp-1", "sz"), "lamp-1"}, want{code: 0, stdout: []string{"id", "lamp-1", "version", "etag"}}},
		{"put lamp-2 json", nil, []string{"devices", "put", s, "--json", "--file", dev("lamp-2", "sz"), "lamp-2"}, want{code: 0, stdout: []string{`"id":"lamp-2"`}, json: true}},
		{"put lamp-3", nil, []string{"devices", "put", s, "--file", dev("lamp-3", "bj"), "lamp-3"}, want{code: 0}},
		{"put create-only exists", nil, []string{"devices", "put", s, "--create", "--file", dev("lamp-3", "bj"), "lamp-3"}, want{code: exitConflict, stderr: "409"}},
		{"put stale etag", nil, []string{"devices", "put", s, "--if-match", `"1.1"`, "--file", dev("lamp-3", "bj"), "lamp-3"}, want{code: exitConflict, stderr: "412 Precondition Failed"}},
		{"put invalid", nil, []string{"devices", "put", s, "--file", bad, "lamp-9"}, want{code: exitInvalid, stderr: "422 Unprocessable Entity: the request body is invalid (params.deviceName: is required for aliyun)"}},
		{"put stdin", nil, []string{"devices", "put", s, "--file", "-", "lamp-4"}, want{code: 0, stdout: []string{"lamp-4"}}},
		{"get", nil, []string{"devices", "get", s, "lamp-1"}, want{code: 0, stdout: []string{"lamp-1", "aliyun", "site=sz", `"deviceName":"lamp-1"`}}},
		{"get json", nil, []string{"devices", "get", s, "--json", "lamp-1"}, want{code: 0, stdout: []string{`"labels":{"site":"sz"}`}, json: true}},
		{"get missing", nil, []string{"devices", "get", s, "nope"}, want{code: exitNotFound, stderr: "404 Not Found"}},
		{"get bad id", nil, []string{"devices", "get", s, "-x"}, want{code: exitUsage, stderr: "flag provided but not defined"}},
		{"patch stale etag", nil, []string{"devices", "patch", s, "--if-match", `"1.1"`, "--file", relabel, "lamp-1"}, want{code: exitConflict, stderr: "412 Precondition Failed"}},
		{"patch relabel", nil, []string{"devices", "patch", s, "--file", relabel, "lamp-1"}, want{code: 0, stdout: []string{"lamp-1", "row=3,site=bj", "secretVersion  1", "etag"}}},
		{"patch relabel json", nil, []string{"devices", "patch", s, "--json", "--file", "-", "lamp-1"}, want{code: 0, stdout: []string{`"labels":{"row":"3","site":"bj"}`}, json: true}},
		{"patch unable to sign", nil, []string{"devices", "patch", s, "--file", badPatch, "lamp-1"}, want{code: exitInvalid, stderr: "422"}},
		{"patch secret", nil, []string{"devices", "patch", s, "--file", secretPatch, "lamp-1"}, want{code: exitInvalid, stderr: "secret"}},
		{"patch not json", nil, []string{"devices", "patch", s, "--file", adminFile, "lamp-1"}, want{code: exitUsage, stderr: "is not one JSON document"}},
		{"patch missing", nil, []string{"devices", "patch", s, "--file", relabel, "nope"}, want{code: exitNotFound, stderr: "404"}},
		{"patch kept", nil, []string{"devices", "get", s, "lamp-1"}, want{code: 0, stdout: []string{"row=3,site=bj", `"deviceName":"lamp-1"`}}},
		{"rotate-secret same", nil, []string{"devices", "rotate-secret", s, "--secret-file", sameSecret, "lamp-3"}, want{code: exitInvalid, stderr: "422"}},
		{"rotate-secret stale etag", nil, []string{"devices", "rotate-secret", s, "--if-match", `"1.1"`, "--secret-file", newSecretFile, "lamp-3"}, want{code: exitConflict, stderr: "412"}},
		{"rotate-secret no file", nil, []string{"devices", "rotate-secret", s, "lamp-3"}, want{code: exitUsage, stderr: "--secret-file FILE"}},
		{"rotate-secret unreadable", nil, []string{"devices", "rotate-secret", s, "--secret-file", filepath.Join(t.TempDir(), "none"), "lamp-3"}, want{code: exitUsage, stderr: "no such file"}},
		{"rotate-secret missing", nil, []string{"devices", "rotate-secret", s, "--secret-file", newSecretFile, "nope"}, want{code: exitNotFound, stderr: "404"}},
		{"rotate-secret", nil, []string{"devices", "rotate-secret", s, "--secret-file", newSecretFile, "lamp-3"}, want{code: 0, stdout: []string{"lamp-3", "secretVersion  2", "secretRotated"}}},
		{"list", nil, []string{"devices", "list", s}, want{code: 0, stdout: []string{"ID", "CLOUD", "lamp-1", "lamp-2", "lamp-3", "lamp-4"}}},
		{"list label", nil, []string{"devices", "list", s, "--label", "site=bj"}, want{code: 0, stdout: []string{"lamp-3"}}},
		{"list page", nil, []string{"devices", "list", s, "--limit", "1", "--json"}, want{code: 0, stdout: []string{`"next":"lamp-1"`}, json: true}},
		{"list all", nil, []string{"devices", "list", s, "--limit", "1", "--all", "--json"}, want{code: 0, stdout: []string{`"lamp-1"`, `"lamp-4"`, `"next":null`}, json: true}},
		{"list bad limit", nil, []string{"devices", "list", s, "--limit", "5000"}, want{code: exitInvalid, stderr: "400 Bad Request"}},
		{"group put", nil, []string{"groups", "put", s, "--file", group, "lamps"}, want{code: 0, stdout: []string{"lamps", "azure"}}},
		{"group patch", nil, []string{"groups", "patch", s, "--file", groupPatch, "lamps"}, want{code: 0, stdout: []string{"lamps", "owner=team-b,site=sz", "version"}}},
		{"group patch json", nil, []string{"groups", "patch", s, "--json", "--file", groupPatch, "lamps"}, want{code: 0, stdout: []string{`"owner":"team-b"`}, json: true}},
		{"group patch missing", nil, []string{"groups", "patch", s, "--file", groupPatch, "nogroup"}, want{code: exitNotFound, stderr: "404"}},
		{"group list", nil, []string{"groups", "list", s}, want{code: 0, stdout: []string{"lamps", "azure", "site=sz"}}},
		{"group get json", nil, []string{"groups", "get", s, "--json", "lamps"}, want{code: 0, stdout: []string{`"id":"lamps"`}, json: true}},
		{"enrolment mint", nil, []string{"enrolment-tokens", "mint", s, "--max-uses", "5", "--ttl", "1h", "lamps"}, want{code: 0, stdout: []string{"token", "cse_", "0 of 5"}}},
		{"enrolment mint name", nil, []string{"enrolment-tokens", "mint", s, "--max-uses", "3", "--ttl", "2h", "--name", "factory-b", "lamps"}, want{code: 0, stdout: []string{"factory-b", "0 of 3", "cse_"}}},
		{"enrolment list", nil, []string{"enrolment-tokens", "list", s, "lamps"}, want{code: 0, stdout: []string{"ID", "USES", "factory-b", "0 of 3", "0 of 5"}, absent: []string{"cse_"}}},
		{"enrolment list json", nil, []string{"enrolment-tokens", "list", s, "--json", "--all", "lamps"}, want{code: 0, stdout: []string{`"enrolmentTokens":[`, `"name":"factory-b"`}, json: true, absent: []string{"cse_"}}},
		{"enrolment list no group", nil, []string{"enrolment-tokens", "list", s, "nogroup"}, want{code: exitNotFound, stderr: "404"}},
		{"enrolment mint no ttl", nil, []string{"enrolment-tokens", "mint", s, "--max-uses", "5", "lamps"}, want{code: exitUsage, stderr: "one of --ttl and --expires-at"}},
		{"enrolment mint no group", nil, []string{"enrolment-tokens", "mint", s, "--max-uses", "5", "--ttl", "1h", "nogroup"}, want{code: exitNotFound, stderr: "404"}},
		{"token mint provisioner", nil, []string{"tokens", "mint", s, "--name", "line-2", "--ttl", "48h"}, want{code: 0, stdout: []string{"provisioner", "csp_"}}},
		{"token mint scoped device", nil, []string{"tokens", "mint", s, "--device", "lamp-1", "--scope-group", "lamps"}, want{code: exitUsage, stderr: "not with --device"}},
		{"token mint scope bad label", nil, []string{"tokens", "mint", s, "--scope-label", "site"}, want{code: exitUsage, stderr: `want key=value, not "site"`}},
		{"token mint scope two values", nil, []string{"tokens", "mint", s, "--scope-label", "site=a", "--scope-label", "site=b"}, want{code: exitUsage, stderr: `label "site" given twice`}},
		{"token mint scope bad group", nil, []string{"tokens", "mint", s, "--scope-group", "-x"}, want{code: exitInvalid, stderr: "422"}},
		{"token mint device", nil, []string{"tokens", "mint", s, "--device", "lamp-1", "--json"}, want{code: 0, stdout: []string{`"csd_`}, json: true}},
		{"token list", nil, []string{"tokens", "list", s}, want{code: 0, stdout: []string{"ID", "NAME", "STATE", "line-2", "provisioner", "active"}, absent: []string{"csp_", "never"}}},
		{"token list json", nil, []string{"tokens", "list", s, "--all", "--json"}, want{code: 0, stdout: []string{`"tokens":[`, `"name":"line-2"`, `"next":null`}, json: true, absent: []string{"csp_"}}},
		{"token list device", nil, []string{"tokens", "list", s, "--device", "lamp-1"}, want{code: 0, stdout: []string{"device", "lamp-1", "active", "never"}, absent: []string{"csd_"}}},
		{"token list device missing", nil, []string{"tokens", "list", s, "--device", "nope"}, want{code: exitNotFound, stderr: "404"}},
		{"token list bad limit", nil, []string{"tokens", "list", s, "--limit", "5000"}, want{code: exitInvalid, stderr: "400"}},
		{"token revoke unknown", nil, []string{"tokens", "revoke", s, "ffffffffffffffffffff"}, want{code: exitNotFound, stderr: "404"}},
		{"keys rotate", nil, []string{"keys", "rotate", s}, want{code: 0, stdout: []string{"kid"}}},
		{"keys jwks", nil, []string{"keys", "jwks", s}, want{code: 0, stdout: []string{"KID", "EC"}}},
		{"token file", map[string]string{"CREDSIGN_TOKEN": ""}, []string{"devices", "get", s, "--token-file", adminFile, "lamp-1"}, want{code: 0}},
		{"token file env", map[string]string{"CREDSIGN_TOKEN": "", "CREDSIGN_TOKEN_FILE": adminFile, "CREDSIGN_SERVER": url}, []string{"devices", "get", "lamp-1"}, want{code: 0}},
		{"deprecated url", nil, []string{"devices", "get", "--url", url, "lamp-1"}, want{code: 0, stderr: "warning: --url is deprecated"}},
		{"deprecated env", map[string]string{"CREDSIGN_URL": url}, []string{"devices", "get", "lamp-1"}, want{code: 0, stderr: "warning: $CREDSIGN_URL is deprecated"}},
		{"no token", map[string]string{"CREDSIGN_TOKEN": ""}, []string{"devices", "get", s, "lamp-1"}, want{code: exitUsage, stderr: "no token"}},
		{"bad token", map[string]string{"CREDSIGN_TOKEN": "csp_nope"}, []string{"devices", "get", s, "lamp-1"}, want{code: exitDenied, stderr: "401 Unauthorized"}},
		{"plain http", nil, []string{"devices", "list", "--server", "http://credsign.example.com"}, want{code: exitUsage, stderr: "not loopback"}},
		{"no server", nil, []string{"devices", "list", "--server", "http://127.0.0.1:1"}, want{code: exitError, stderr: "connection refused"}},
		{"missing id", nil, []string{"devices", "get", s}, want{code: exitUsage, stderr: "want ID"}},
		{"unknown verb", nil, []string{"devices", "frob"}, want{code: exitUsage, stderr: `unknown verb "frob"`}},
		{"delete", nil, []string{"devices", "delete", s, "lamp-2"}, want{code: 0, stdout: []string{"device lamp-2 deleted"}}},
		{"delete again", nil, []string{"devices", "delete", s, "--json", "lamp-2"}, want{code: exitNotFound, stderr: "404"}},
		{"group delete", nil, []string{"groups", "delete", s, "--json", "lamps"}, want{code: 0}},
	}
	for _, st := range steps {
		stdin := ""
		switch st.name {
		case "put stdin":
			b, _ := os.ReadFile(dev("lamp-4", "gz"))
			stdin = string(b)
		case "patch relabel json":
			stdin = `{"labels":{"row":"3"}}`
		}
		code, out, errOut := clientCLI(t, stdin, st.env, st.args...)
		w := st.want
		if code != w.code {
			t.Errorf("%s: exit %d, want %d\nstdout %s\nstderr %s", st.name, code, w.code, out, errOut)
			continue
		}
		for _, s := range w.stdout {
			if !strings.Contains(out, s) {
				t.Errorf("%s: stdout lacks %q:\n%s", st.name, s, out)
			}
		}
		if w.stderr != "" && (!strings.Contains(errOut, w.stderr) || strings.Count(errOut, "\n") != 1) {
			t.Errorf("%s: stderr %q, want one line with %q", st.name, errOut, w.stderr)
		}
		if w.stderr == "" && errOut != "" {
			t.Errorf("%s: stderr %q, want nothing", st.name, errOut)
		}
		if w.json && (!json.Valid([]byte(out)) || strings.Count(out, "\n") != 1) {
			t.Errorf("%s: stdout is not one JSON document on one line: %q", st.name, out)
		}
		for _, a := range w.absent {
			if strings.Contains(out, a) {
				t.Errorf("%s: stdout has %q:\n%s", st.name, a, out)
			}
		}
		if strings.Contains(out+errOut, secret) || strings.Contains(out+errOut, newSecret) {
			t.Errorf("%s: a device secret is in the output", st.name)
		}
		if st.name != "token mint provisioner" && strings.Contains(out+errOut, importAdmin) {
			t.Errorf("%s: the admin token is in the output", st.name)
		}
	}

	// --all follows next to the end: every device once, in order.
	_, out, _ := clientCLI(t, "", nil, "devices", "list", s, "--limit", "2", "--all", "--json")
	var all struct {
		Devices []struct{ ID string }
		Next    *string
	}
	if err := json.Unmarshal([]byte(out), &all); err != nil || all.Next != nil {
		t.Fatalf("list --all --json: %v %s", err, out)
	}
	var ids []string
	for _, d := range all.Devices {
		ids = append(ids, d.ID)
	}
	if got := strings.Join(ids, ","); got != "lamp-1,lamp-3,lamp-4" {
		t.Errorf("list --all: %s, want lamp-1,lamp-3,lamp-4", got)
	}
	// A table page that is not the last says how to go on.
	code, out, errOut := clientCLI(t, "", nil, "devices", "list", s, "--limit", "1")
	if code != 0 || !strings.Contains(errOut, "--after lamp-1") || strings.Count(out, "\n") != 2 {
		t.Errorf("list one page: exit %d\n%s%s", code, out, errOut)
	}

	// A minted device token works, and revoked it does not: the ID in
	// --json is the one revoke takes.
	_, out, _ = clientCLI(t, "", nil, "tokens", "mint", s, "--device", "lamp-1", "--json")
	var tok struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok.Token, "csd_") {
		t.Fatalf("mint: %v %s", err, out)
	}
	if code, _, errOut := clientCLI(t, "", map[string]string{"CREDSIGN_TOKEN": tok.Token}, "devices", "get", s, "lamp-1"); code != exitDenied || !strings.Contains(errOut, "403") {
		t.Errorf("device token reading a device: exit %d %s", code, errOut)
	}
	if code, out, errOut := clientCLI(t, "", nil, "tokens", "revoke", s, "--device", "lamp-1", tok.ID); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("revoke: exit %d %s%s", code, out, errOut)
	}
	if code, _, errOut := clientCLI(t, "", map[string]string{"CREDSIGN_TOKEN": tok.Token}, "devices", "get", s, "lamp-1"); code != exitDenied || !strings.Contains(errOut, "401") {
		t.Errorf("revoked device token: exit %d %s", code, errOut)
	}

	t.Run("scoped tokens", func(t *testing.T) { clientScoped(t, s, write) })
	t.Run("rotate-secret", func(t *testing.T) { clientRotateSecret(t, url, write) })
	t.Run("device keys", func(t *testing.T) { clientDeviceKeys(t, s, write) })
}

// clientScoped: a provisioner token minted with --scope-label sees, reads
// and writes only the devices inside its scope (lamp-1, relabelled site=bj
// by patch, and lamp-3), and one minted with --scope-group only its group.
func clientScoped(t *testing.T, s string, write func(name, body string) string) {
	_, out, _ := clientCLI(t, "", nil, "tokens", "mint", s, "--name", "line-bj", "--scope-label", "site=bj", "--json")
	var tok struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok.Token, "csp_") {
		t.Fatalf("mint scoped: %v %s", err, out)
	}
	as := map[string]string{"CREDSIGN_TOKEN": tok.Token}
	code, out, errOut := clientCLI(t, "", as, "devices", "list", s, "--all", "--json")
	var list struct{ Devices []struct{ ID string } }
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		t.Fatalf("scoped list: exit %d %v %s%s", code, err, out, errOut)
	}
	var ids []string
	for _, d := range list.Devices {
		ids = append(ids, d.ID)
	}
	if got := strings.Join(ids, ","); got != "lamp-1,lamp-3" {
		t.Errorf("scoped list: %s, want lamp-1,lamp-3", got)
	}
	outside := write("outside.json", `{"labels":{"site":"sz"}}`)
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"get outside", []string{"devices", "get", s, "lamp-4"}, exitNotFound, "404"},
		{"patch outside", []string{"devices", "patch", s, "--file", outside, "lamp-4"}, exitNotFound, "404"},
		{"token of a device outside", []string{"tokens", "mint", s, "--device", "lamp-4"}, exitNotFound, "404"},
		{"tokens of a device outside", []string{"tokens", "list", s, "--device", "lamp-4"}, exitNotFound, "404"},
		{"patch out of scope", []string{"devices", "patch", s, "--file", outside, "lamp-1"}, exitInvalid, "422"},
		{"provisioner tokens", []string{"tokens", "list", s}, exitDenied, "403"},
		{"get inside", []string{"devices", "get", s, "lamp-3"}, 0, ""},
		{"tokens of a device inside", []string{"tokens", "list", s, "--device", "lamp-1"}, 0, ""},
	} {
		code, out, errOut := clientCLI(t, "", as, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("scoped %s: exit %d, want %d\n%s%s", tt.name, code, tt.code, out, errOut)
		}
	}
	// What it was refused changed nothing.
	if _, out, _ := clientCLI(t, "", nil, "devices", "get", s, "--json", "lamp-4"); !strings.Contains(out, `"labels":{"site":"gz"}`) {
		t.Errorf("lamp-4 after a refused patch: %s", out)
	}
	if _, out, _ := clientCLI(t, "", nil, "devices", "get", s, "--json", "lamp-1"); !strings.Contains(out, `"site":"bj"`) {
		t.Errorf("lamp-1 after a refused patch: %s", out)
	}
	// The admin's list shows the scope, never a token's text.
	if code, out, _ := clientCLI(t, "", nil, "tokens", "list", s); code != 0 || !strings.Contains(out, "line-bj") || !strings.Contains(out, "site=bj") || strings.Contains(out, tok.Token) {
		t.Errorf("tokens list: exit %d\n%s", code, out)
	}

	// --scope-group: its group and nothing else.
	group := write("pumps.json", `{"cloud":"azure","params":{"hubHost":"hub.azure-devices.net","deviceId":"{deviceId}"},"secret":"8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="}`)
	for _, g := range []string{"pumps", "fans"} {
		if code, _, errOut := clientCLI(t, "", nil, "groups", "put", s, "--file", group, g); code != 0 {
			t.Fatalf("groups put %s: %d %s", g, code, errOut)
		}
	}
	_, out, _ = clientCLI(t, "", nil, "tokens", "mint", s, "--scope-group", "pumps", "--json")
	if err := json.Unmarshal([]byte(out), &tok); err != nil {
		t.Fatalf("mint group-scoped: %v %s", err, out)
	}
	as = map[string]string{"CREDSIGN_TOKEN": tok.Token}
	if code, out, _ := clientCLI(t, "", as, "groups", "list", s); code != 0 || !strings.Contains(out, "pumps") || strings.Contains(out, "fans") {
		t.Errorf("group-scoped groups list: exit %d\n%s", code, out)
	}
	if code, out, _ := clientCLI(t, "", as, "devices", "list", s); code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("group-scoped devices list (no device in pumps): exit %d\n%s", code, out)
	}
	if code, _, _ := clientCLI(t, "", as, "enrolment-tokens", "list", s, "fans"); code != exitNotFound {
		t.Errorf("group-scoped enrolment-tokens list of another group: exit %d", code)
	}
}

// clientRotateSecret: rotate-secret changes the credentials a device gets
// (huawei's password is HMAC-SHA256 keyed with the hour of the ClientId
// over the secret, so it names the secret it was signed with), the
// device's token keeps working, and the new secret is printed nowhere.
func clientRotateSecret(t *testing.T, url string, write func(name, body string) string) {
	const oldSecret, newSecret = "meter-secret-one-0123456789", "meter-secret-two-9876543210"
	s := "--server=" + url
	if code, _, errOut := clientCLI(t, "", nil, "devices", "put", s, "--file", write("meter.json", `{"cloud":"huawei","params":{"deviceId":"meter-1"},"secret":"`+oldSecret+`"}`), "meter-1"); code != 0 {
		t.Fatalf("put meter-1: %s", errOut)
	}
	_, out, _ := clientCLI(t, "", nil, "tokens", "mint", s, "--device", "meter-1", "--json")
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil {
		t.Fatal(err)
	}
	signedWith := func(secret string) {
		t.Helper()
		var c struct{ ClientID, Password string }
		if code := call(t, http.DefaultClient, "POST", url+"/v1/devices/meter-1/credentials", tok.Token, nil, &c); code != http.StatusOK || len(c.ClientID) < 10 {
			t.Fatalf("credentials: %d %+v", code, c)
		}
		mac := hmac.New(sha256.New, []byte(c.ClientID[len(c.ClientID)-10:]))
		mac.Write([]byte(secret))
		if c.Password != hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("the password is not signed with the secret %q expected", secret[:12])
		}
	}
	signedWith(oldSecret)
	code, out, errOut := clientCLI(t, newSecret+"\n", nil, "devices", "rotate-secret", s, "--json", "--secret-file", "-", "meter-1")
	if code != 0 || !strings.Contains(out, `"secretVersion":2`) || strings.Contains(out+errOut, newSecret) {
		t.Fatalf("rotate-secret: exit %d\n%s%s", code, out, errOut)
	}
	signedWith(newSecret)
}

// clientDeviceKeys: keys add takes credsign-agent keygen's line or a bare
// JWK, list shows the key, remove removes it; a private JWK is refused.
func clientDeviceKeys(t *testing.T, s string, write func(name, body string) string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	b := pub.Bytes() // 0x04 || X || Y
	d, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	jwk := `{"kty":"EC","crv":"P-256","x":"` + enc(b[1:33]) + `","y":"` + enc(b[33:]) + `"}`
	keygen := write("keygen.json", `{"kid":"from-keygen","jwk":`+jwk+`}`+"\n")
	bare := write("jwk.json", jwk)
	private := write("private.json", strings.TrimSuffix(jwk, "}")+`,"d":"`+enc(d)+`"}`)

	code, out, errOut := clientCLI(t, "", nil, "devices", "keys", "add", s, "--json", "--name", "factory", "--jwk-file", keygen, "lamp-1")
	var added struct{ Kid string }
	if err := json.Unmarshal([]byte(out), &added); code != 0 || err != nil || len(added.Kid) != 43 {
		t.Fatalf("keys add: exit %d %v\n%s%s", code, err, out, errOut)
	}
	for _, tt := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"list", "", []string{"list", s, "lamp-1"}, 0, []string{"KID", added.Kid, "factory", "EC/P-256", "none"}, ""},
		{"add again", "", []string{"add", s, "--jwk-file", bare, "lamp-1"}, exitConflict, nil, "409"},
		{"add private", "", []string{"add", s, "--jwk-file", private, "lamp-3"}, exitInvalid, nil, "422"},
		{"add not a jwk", `{"kid":"x"}`, []string{"add", s, "--jwk-file", "-", "lamp-3"}, exitUsage, nil, "neither kty"},
		{"add no file", "", []string{"add", s, "lamp-3"}, exitUsage, nil, "--jwk-file FILE"},
		{"add bare stdin", jwk, []string{"add", s, "--jwk-file", "-", "lamp-3"}, 0, []string{added.Kid, "EC/P-256"}, ""},
		{"add missing device", "", []string{"add", s, "--jwk-file", bare, "nope"}, exitNotFound, nil, "404"},
		{"remove", "", []string{"remove", s, "lamp-1", added.Kid}, 0, []string{"key " + added.Kid + " of device lamp-1 removed"}, ""},
		{"remove again", "", []string{"remove", s, "lamp-1", added.Kid}, exitNotFound, nil, "404"},
		{"list empty", "", []string{"list", s, "--json", "lamp-1"}, 0, []string{`"keys":[]`}, ""},
		{"remove no kid", "", []string{"remove", s, "lamp-1"}, exitUsage, nil, "want ID KID"},
	} {
		code, out, errOut := clientCLI(t, tt.stdin, nil, append([]string{"devices", "keys"}, tt.args...)...)
		if code != tt.code || !strings.Contains(errOut, tt.stderr) {
			t.Errorf("keys %s: exit %d, want %d\n%s%s", tt.name, code, tt.code, out, errOut)
		}
		for _, w := range tt.stdout {
			if !strings.Contains(out, w) {
				t.Errorf("keys %s: stdout lacks %q:\n%s", tt.name, w, out)
			}
		}
		if strings.Contains(out+errOut, enc(d)) {
			t.Errorf("keys %s: the private key is in the output", tt.name)
		}
	}
}

// TestClientHelp: every group lists its verbs, and each verb's -h names
// its flags, exit 0; a verb with verbs of its own (devices keys) lists
// them, and each of those names its flags.
func TestClientHelp(t *testing.T) {
	nested := map[string]map[string]subcommand{"devices keys": deviceKeyVerbs}
	var check func(name string, verbs map[string]subcommand)
	check = func(name string, verbs map[string]subcommand) {
		args := strings.Fields(name)
		code, out, _ := clientCLI(t, "", nil, append(args, "help")...)
		if code != 0 {
			t.Errorf("%s help: exit %d", name, code)
		}
		for verb := range verbs {
			if !strings.Contains(out, verb) {
				t.Errorf("%s help lacks %s", name, verb)
			}
			if sub, ok := nested[name+" "+verb]; ok {
				check(name+" "+verb, sub)
				continue
			}
			code, out, errOut := clientCLI(t, "", nil, append(args, verb, "-h")...)
			if code != 0 || !strings.Contains(out, "-server URL") || !strings.Contains(out, "-json") || errOut != "" {
				t.Errorf("%s %s -h: exit %d\n%s%s", name, verb, code, out, errOut)
			}
		}
	}
	for group, verbs := range clientGroups {
		check(group, verbs)
	}
	if code, _, errOut := clientCLI(t, "", nil, "devices", "keys"); code != exitUsage || !strings.Contains(errOut, "usage: credsign devices keys <verb>") {
		t.Errorf("devices keys without a verb: exit %d %q", code, errOut)
	}
	if code, _, errOut := clientCLI(t, "", nil, "devices", "keys", "frob"); code != exitUsage || !strings.Contains(errOut, `credsign devices keys: unknown verb "frob"`) {
		t.Errorf("devices keys frob: exit %d %q", code, errOut)
	}
}

// TestClientListBadAnswers: answers a real server never gives (an
// httptest fake, for that reason): a page that is not a list, and a next
// that names the cursor just sent, end --all with exit 1 and one line
// rather than a wrong list or a loop.
func TestClientListBadAnswers(t *testing.T) {
	for _, tt := range []struct {
		name, body, want string
	}{
		{"not a list", `{"devices":"lamp-1","next":null}`, "is not a list of devices"},
		{"not JSON", `<html>`, "is not a list of devices"},
		{"same cursor", `{"devices":[],"next":"lamp-1"}`, `answered the same cursor "lamp-1" twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, tt.body)
			}))
			defer ts.Close()
			code, _, errOut := clientCLI(t, "", nil, "devices", "list", "--server", ts.URL, "--all", "--json")
			if code != exitError || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut, tt.want)
			}
		})
	}
}
