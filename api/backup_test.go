package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
)

// Snapshot passes the file store's snapshot through (unless down), so that
// the server sees the store it wraps as one that can back itself up.
func (f *flakyStore) Snapshot(ctx context.Context, w io.Writer, size func(int64)) (int64, error) {
	if err := f.err(); err != nil {
		return 0, err
	}
	return f.Store.(secrets.Snapshotter).Snapshot(ctx, w, size)
}

// TestBackupWhileServing takes a backup through the API while devices are
// written and credentials issued, checks that no request failed meanwhile,
// restores the copy into a new data directory, and serves it: every kind
// of token (provisioner, device, enrolment) keeps working, revoked ones
// stay refused, and the JWT key ring is the same.
func TestBackupWhileServing(t *testing.T) {
	f := newFixture(t)
	mustStatus(t, f.do("POST", "/v1/keys/jwt/rotate", testAdmin, nil), 200, "rotate")
	jwks := f.do("GET", "/.well-known/jwks.json", "", nil)
	mustStatus(t, jwks, 200, "jwks")

	// Load: writers and issuers until the backup is done.
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		written atomic.Int64
		// sent counts the writes sent: one the store committed before the
		// copy ended may be answered after the backup is.
		sent   atomic.Int64
		failed atomic.Int64
	)
	send := func(method, path, token string, body []byte) int {
		req, _ := http.NewRequest(method, f.url+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	doc := []byte(`{"cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"x"},"secret":"s3cr3t-load"}`)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				sent.Add(1)
				if st := send("PUT", fmt.Sprintf("/v1/devices/load-%d-%d", w, i), f.prov, doc); st != 201 {
					failed.Add(1)
				} else {
					written.Add(1)
				}
				if st := send("POST", "/v1/devices/aliyun-1/credentials", f.dev, nil); st != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	for written.Load() < 50 {
		if failed.Load() > 0 {
			break
		}
	}
	before := written.Load()
	r := f.do("GET", "/v1/admin/backup", testAdmin, nil)
	after := sent.Load()
	stop.Store(true)
	wg.Wait()
	mustStatus(t, r, 200, "backup")
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed while the backup ran", n)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
		t.Errorf("Content-Length %s for %d bytes", cl, len(r.body))
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	for _, s := range f.secrets {
		if bytes.Contains(r.body, []byte(s)) {
			t.Fatal("the backup holds a device secret in clear")
		}
	}

	file := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(file, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	keyText, err := os.ReadFile(filepath.Join(f.dir, filestore.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	key, err := filestore.ParseKey(keyText)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	counts, err := filestore.Restore(context.Background(), file, filestore.Config{Dir: dir, Key: key}, false)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's 4 devices, and the load's written before the copy
	// began (at least) and not sent after it ended (at most).
	if n := int64(counts[secrets.KindDevice]) - 4; n < before || n > after {
		t.Errorf("backup holds %d load devices, want %d to %d", n, before, after)
	}
	restored, err := filestore.Open(filestore.Config{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restored.Close() })
	e := newEnv(t, func(c *envConfig) { c.Store = restored })
	for _, c := range []struct {
		what, method, path, token string
		body                      any
		want                      int
	}{
		{"device token", "POST", "/v1/devices/aliyun-1/credentials", f.dev, nil, 200},
		{"other device token", "POST", "/v1/devices/tencent-1/credentials", f.devOther, nil, 200},
		{"provisioner token", "GET", "/v1/devices/aliyun-1", f.prov, nil, 200},
		{"enrolment token", "POST", "/v1/enrol", f.enrol, map[string]any{"deviceId": "enrolled-after-restore"}, 201},
		{"revoked device token", "POST", "/v1/devices/aliyun-1/credentials", f.revokedDev, nil, 401},
		{"revoked provisioner token", "GET", "/v1/clouds", f.revoked, nil, 401},
		{"revoked enrolment token", "POST", "/v1/enrol", f.revokedEnrol, map[string]any{"deviceId": "enrolled-2"}, 401},
		{"load device", "GET", "/v1/devices/load-0-0", f.prov, nil, 200},
	} {
		mustStatus(t, e.do(c.method, c.path, c.token, c.body), c.want, c.what)
	}
	if got := e.do("GET", "/.well-known/jwks.json", "", nil); !bytes.Equal(got.body, jwks.body) {
		t.Errorf("JWKS after restore:\n%s\nwant\n%s", got.body, jwks.body)
	}
}

// TestBackupRefused: a store that cannot copy itself (Vault) answers 409
// with a problem that says what to do instead, and a down store 503.
func TestBackupRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.store.down.Store(true)
	r := e.do("GET", "/v1/admin/backup", testAdmin, nil)
	mustStatus(t, r, 503, "backup of a store that is down")
	r.problem(t)

	plain := newEnv(t, func(c *envConfig) { c.Store = struct{ secrets.Store }{c.Store} })
	r = plain.do("GET", "/v1/admin/backup", testAdmin, nil)
	mustStatus(t, r, 409, "backup of a store without snapshots")
	if p := r.problem(t); !bytes.Contains([]byte(fmt.Sprint(p["detail"])), []byte("raft snapshot")) {
		t.Errorf("detail %q does not say what to do", p["detail"])
	}
}
