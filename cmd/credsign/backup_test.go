package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestBackupRestoreCLI: `credsign backup --server` during a load run, with no
// request failing; `backup verify`; `restore` into a new directory, which
// then serves every device and token; `backup --data-dir` of a stopped
// server; and the refusals (a store in use, a store already there, a
// non-admin token).
func TestBackupRestoreCLI(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}
	srv := startServe(t, env, append([]string{"--data-dir", dir}, overlapFlags...)...)
	base := "http://" + srv.addr
	f := makeFleet(t, base, 100)
	srv.shutdown(t)
	f.rotateShort(t, env, "--data-dir", dir)
	srv = startServe(t, env, append([]string{"--data-dir", dir}, overlapFlags...)...)
	base = "http://" + srv.addr
	tokenFile := filepath.Join(t.TempDir(), "admin")
	if err := os.WriteFile(tokenFile, []byte(srvAdmin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Load: issue with every device token while the backup runs.
	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		issued atomic.Int64
		failed atomic.Int64
	)
	var toks []string
	var ids []string
	for id, tok := range f.devTokens {
		ids, toks = append(ids, id), append(toks, tok)
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				req, _ := http.NewRequest("POST", base+"/v1/devices/"+ids[i%len(ids)]+"/credentials", nil)
				req.Header.Set("Authorization", "Bearer "+toks[i%len(ids)])
				res, err := http.DefaultClient.Do(req)
				if err != nil || res.StatusCode != 200 {
					failed.Add(1)
				} else {
					issued.Add(1)
				}
				if res != nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
		}()
	}
	backup := filepath.Join(t.TempDir(), "credsign.backup")
	code, out, errOut := cli(t, "backup", "--server", base, "--token-file", tokenFile, "-o", backup)
	stop.Store(true)
	wg.Wait()
	if code != 0 {
		t.Fatalf("backup: %d\n%s%s", code, out, errOut)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of %d issues failed during the backup", failed.Load(), failed.Load()+issued.Load())
	}
	if code, out, errOut := cli(t, "backup", "--server", base, "--token-file", tokenFile, "-o", backup); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("backup over an existing file: %d %s%s", code, out, errOut)
	}
	provFile := filepath.Join(t.TempDir(), "prov")
	os.WriteFile(provFile, []byte(f.prov), 0o600)
	bad := filepath.Join(t.TempDir(), "bad")
	if code, _, errOut := cli(t, "backup", "--server", base, "--token-file", provFile, "-o", bad); code != 1 || !strings.Contains(errOut, "403") {
		t.Errorf("backup as provisioner: %d %s", code, errOut)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("a refused backup left a file")
	}
	key := filepath.Join(dir, "store.key")
	code, out, errOut = cli(t, "backup", "verify", "--key-file", key, backup)
	if code != 0 || !strings.Contains(out, "devices 102") {
		t.Fatalf("verify: %d\n%s%s", code, out, errOut)
	}
	// The server holds its directory: a restore over it is refused.
	if code, _, errOut := cli(t, "restore", "--data-dir", dir, "--key-file", key, "--force", backup); code != 1 || !strings.Contains(errOut, "in use") {
		t.Errorf("restore over the running server's store: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "restore", "--data-dir", dir, "--key-file", key, backup); code != 1 || !strings.Contains(errOut, "already holds a store") {
		t.Errorf("restore over a store: %d %s", code, errOut)
	}
	srv.shutdown(t)

	restored := t.TempDir()
	code, out, errOut = cli(t, "restore", "--data-dir", restored, "--key-file", key, backup)
	if code != 0 || !strings.Contains(out, "copied the key") {
		t.Fatalf("restore: %d\n%s%s", code, out, errOut)
	}
	srv = startServe(t, env, append([]string{"--data-dir", restored}, overlapFlags...)...)
	f.sameState(t, "http://"+srv.addr)
	f.check(t, "http://"+srv.addr, "lamp-restored")
	srv.shutdown(t)

	// A stopped server's directory, without the API.
	offline := filepath.Join(t.TempDir(), "offline.backup")
	if code, out, errOut := cli(t, "backup", "--data-dir", dir, "-o", offline); code != 0 {
		t.Fatalf("backup --data-dir: %d %s%s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "backup", "verify", "--key-file", key, offline); code != 0 || !strings.Contains(out, "devices 102") {
		t.Fatalf("verify offline backup: %d %s%s", code, out, errOut)
	}
	// A damaged copy fails verification.
	raw, _ := os.ReadFile(offline)
	cut := filepath.Join(t.TempDir(), "cut")
	os.WriteFile(cut, raw[:len(raw)-4096], 0o600)
	if code, _, errOut := cli(t, "backup", "verify", "--key-file", key, cut); code != 1 || !strings.Contains(errOut, "cut short") {
		t.Errorf("verify a cut copy: %d %s", code, errOut)
	}
}

// TestBackupUsage: bad invocations are one line and exit 2.
func TestBackupUsage(t *testing.T) {
	for _, args := range [][]string{
		{"backup"},
		{"backup", "-o", "x", "extra"},
		{"backup", "-o", "x", "--server", "http://example.com"},
		{"backup", "-o", "x", "--store-key-file", "k"},
		{"backup", "verify"},
		{"restore", "file"},
		{"restore", "--data-dir", "d"},
	} {
		t.Setenv("CREDSIGN_TOKEN", "csa_x")
		t.Setenv("CREDSIGN_STORE_KEY", "")
		code, out, errOut := cli(t, args...)
		if code != exitUsage || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
