package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeAdminTokenRotation: serve picks up a new --admin-token-file on
// SIGHUP and when it changes, with no restart: two tokens both valid, the
// removed one refused; a file that cannot be used keeps the tokens in use
// with one warning; no token text reaches the log.
func TestServeAdminTokenRotation(t *testing.T) {
	const oldTok, newTok = "csa_rotation-old-0123456789", "csa_rotation-new-0123456789"
	defer func(d time.Duration) { adminTokenPoll = d }(adminTokenPoll)
	file := filepath.Join(t.TempDir(), "admin-tokens")
	writeFile(t, file, []byte(oldTok+"\n"))
	// hup does not poll in this test's time: only SIGHUP reloads it.
	adminTokenPoll = time.Hour
	hup := startServe(t, nil, "--admin-token-file", file)
	adminTokenPoll = 20 * time.Millisecond
	r := startServe(t, nil, "--admin-token-file", file)
	c := &http.Client{Timeout: 5 * time.Second}
	expectOn := func(srv *running, step string, valid map[string]bool) {
		t.Helper()
		status := func(tok string) int {
			return call(t, c, http.MethodGet, "http://"+srv.addr+"/v1/devices", tok, nil, nil)
		}
		ok := waitUntil(func() bool {
			for _, tok := range []string{oldTok, newTok} {
				if (status(tok) == http.StatusOK) != valid[tok] {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Fatalf("%s: old %d, new %d (want valid: old %v, new %v)\n%s", step, status(oldTok), status(newTok), valid[oldTok], valid[newTok], srv.stderr)
		}
	}
	expect := func(step string, valid map[string]bool) { t.Helper(); expectOn(r, step, valid) }
	expect("start", map[string]bool{oldTok: true})

	// Both: the poll sees the change; the other server needs its SIGHUP.
	writeFile(t, file, []byte("# rotation: new one added\n"+oldTok+"\n\n"+newTok+"\n"))
	expect("both", map[string]bool{oldTok: true, newTok: true})
	expectOn(hup, "before SIGHUP", map[string]bool{oldTok: true})
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	expectOn(hup, "after SIGHUP", map[string]bool{oldTok: true, newTok: true})

	// The old one removed: the poll sees it.
	writeFile(t, file, []byte(newTok+"\n"))
	expect("old removed", map[string]bool{newTok: true})

	// Unusable files keep the set in use.
	for _, bad := range []string{"", "# nothing\n", newTok + "\nshort\n"} {
		writeFile(t, file, []byte(bad))
		warned := func() int { return strings.Count(r.stderr.String(), "admin token file could not be used") }
		before := warned()
		if !waitUntil(func() bool { return warned() > before }) {
			t.Fatalf("no warning for %q:\n%s", bad, r.stderr)
		}
		expect("bad file", map[string]bool{newTok: true})
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	expect("file gone", map[string]bool{newTok: true})
	r.shutdown(t)

	logs := r.stderr.String()
	for _, tok := range []string{oldTok, newTok, "short"} {
		if strings.Contains(logs, tok) {
			t.Errorf("%q reached the log:\n%s", tok, logs)
		}
	}
	// Three reloads: the change to two tokens, the SIGHUP, the change to one.
	if n := strings.Count(logs, `"event":"admin.tokens.reloaded"`); n != 3 {
		t.Errorf("%d admin.tokens.reloaded audit events, want 3:\n%s", n, logs)
	}
	if n := strings.Count(logs, `"message":"admin tokens reloaded"`); n != 3 || !strings.Contains(logs, `"count":1,`) {
		t.Errorf("%d reload info lines, want 3 (the last with count 1):\n%s", n, logs)
	}
}

func TestParseAdminTokens(t *testing.T) {
	const a, b = "csa_parse-first-0123456789", "csa_parse-second-012345678"
	for _, c := range []struct {
		name, text string
		want       []string
		err        string
	}{
		{"one", a, []string{a}, ""},
		{"one with newline", a + "\n", []string{a}, ""},
		{"two, comments, blanks, CRLF", "# admin tokens\r\n\r\n  " + a + "  \r\n#old\n" + b + "\n", []string{a, b}, ""},
		{"empty", "", nil, "holds no admin token"},
		{"comments only", "# x\n\n", nil, "holds no admin token"},
		{"short", a + "\nshort-token\n", nil, "line 2: the admin token must be at least 16 characters"},
		{"space", "a token with a space in it\n", nil, "line 1: the admin token must be printable ASCII"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseAdminTokens(c.text)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				if strings.Contains(err.Error(), "short-token") || strings.Contains(err.Error(), "space in it") {
					t.Errorf("error holds the token: %v", err)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
