package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/storetest"
)

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) secrets.Store {
		return open(t, Config{Dir: t.TempDir()})
	})
}

func TestConformanceWithKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	storetest.Run(t, func(t *testing.T) secrets.Store {
		return open(t, Config{Dir: t.TempDir(), Key: key})
	})
}

func TestKeyFileAndNoPlaintext(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := open(t, Config{Dir: dir})
	ctx := context.Background()
	d := secrets.Device{ID: "lamp-7", Cloud: "aliyun", Params: map[string]any{"deviceName": "kitchen-lamp-name"},
		Secret: storetest.NewSecret(), Labels: map[string]string{"site": "shenzhen-site"}}
	if _, err := s.PutDevice(ctx, d, 0); err != nil {
		t.Fatal(err)
	}
	tok := secrets.Token{ID: "tok-1", Hash: storetest.Hash("csg_text"), Role: secrets.RoleDevice, DeviceID: "lamp-7"}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	g := secrets.Group{ID: "lamps", Cloud: "azure", Secret: storetest.NewSecret(), Params: map[string]any{"hubHost": "group-template-host"}}
	if _, err := s.PutGroup(ctx, g, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for name, want := range map[string]os.FileMode{"": 0o700, KeyFileName: 0o600, DataFileName: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != want {
			t.Errorf("%q mode %o, want %o", name, perm, want)
		}
	}
	keyText, err := os.ReadFile(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKey(keyText)
	if err != nil {
		t.Fatalf("key file does not parse: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, DataFileName))
	if err != nil {
		t.Fatal(err)
	}
	for name, needle := range map[string][]byte{
		"secret":         []byte(d.Secret),
		"key":            key,
		"key as base64":  bytes.TrimSpace(keyText),
		"param value":    []byte("kitchen-lamp-name"),
		"label value":    []byte("shenzhen-site"),
		"token hash":     []byte(tok.Hash),
		"group secret":   []byte(g.Secret),
		"group template": []byte("group-template-host"),
		"secret (UTF16)": []byte(strings.Join(strings.Split(d.Secret, ""), "\x00")),
	} {
		if bytes.Contains(data, needle) {
			t.Errorf("data file contains the %s in plain text", name)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != DataFileName && e.Name() != KeyFileName {
			t.Errorf("unexpected file %s in the data directory", e.Name())
		}
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	d := secrets.Device{ID: "lamp-7", Cloud: "aliyun", Params: map[string]any{"port": 8883}, Secret: storetest.NewSecret()}
	if _, err := s.PutDevice(ctx, d, 0); err != nil {
		t.Fatal(err)
	}
	want, err := s.PutDevice(ctx, d, 1)
	if err != nil {
		t.Fatal(err)
	}
	tok := secrets.Token{ID: "t1", Hash: storetest.Hash("t1"), Role: secrets.RoleProvisioner}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() error{
		"GetDevice":   func() error { _, err := s.GetDevice(ctx, "lamp-7"); return err },
		"PutDevice":   func() error { _, err := s.PutDevice(ctx, d, -1); return err },
		"TokenByHash": func() error { _, err := s.TokenByHash(ctx, tok.Hash); return err },
		"RevokeToken": func() error { return s.RevokeToken(ctx, "t1", time.Now()) },
		"Ping":        func() error { return s.Ping(ctx) },
	} {
		if err := op(); !errors.Is(err, secrets.ErrUnavailable) {
			t.Errorf("%s on a closed store: %v, want ErrUnavailable", name, err)
		}
	}

	s2 := open(t, Config{Dir: dir})
	got, err := s2.GetDevice(ctx, "lamp-7")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Secret != d.Secret || got.Params["port"] != float64(8883) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("after reopen got version %d params %v created %v updated %v; want %d %v %v",
			got.Version, got.Params, got.CreatedAt, got.UpdatedAt, want.Version, want.CreatedAt, want.UpdatedAt)
	}
	if _, err := s2.TokenByHash(ctx, tok.Hash); err != nil {
		t.Fatalf("token after reopen: %v", err)
	}
}

// written returns a directory holding a store with one device.
func written(t *testing.T) string {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutDevice(context.Background(), secrets.Device{ID: "a", Cloud: "aliyun", Secret: "x"}, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	return dir
}

func TestOpenErrors(t *testing.T) {
	data := func(dir string) string { return filepath.Join(dir, DataFileName) }
	tests := []struct {
		name    string
		setup   func(t *testing.T) Config
		wantErr error  // checked with errors.Is when set
		wantMsg string // substring of the error
	}{
		{"no dir", func(t *testing.T) Config { return Config{} }, nil, "no data directory"},
		{"short key", func(t *testing.T) Config { return Config{Dir: t.TempDir(), Key: []byte("short")} }, nil, "key is 5 bytes, want 32"},
		{"key file is the data file", func(t *testing.T) Config {
			dir := t.TempDir()
			return Config{Dir: dir, KeyFile: data(dir)}
		}, nil, "key file may not be the data file"},
		{"key file is the legacy file", func(t *testing.T) Config {
			dir := t.TempDir()
			return Config{Dir: dir, KeyFile: filepath.Join(dir, LegacyFileName)}
		}, nil, "key file may not be the data file"},
		{"wrong key", func(t *testing.T) Config {
			return Config{Dir: written(t), Key: bytes.Repeat([]byte{1}, KeySize)}
		}, ErrWrongKey, "wrong key or damaged file"},
		{"other key file", func(t *testing.T) Config {
			dir := written(t)
			other := filepath.Join(t.TempDir(), "other.key")
			os.WriteFile(other, []byte(FormatKey(bytes.Repeat([]byte{2}, KeySize))), 0o600)
			return Config{Dir: dir, KeyFile: other}
		}, ErrWrongKey, "wrong key or damaged file"},
		{"missing key file", func(t *testing.T) Config {
			dir := written(t)
			os.Remove(filepath.Join(dir, KeyFileName))
			return Config{Dir: dir}
		}, nil, "is missing but the data exists"},
		{"bad key file", func(t *testing.T) Config {
			dir := written(t)
			os.WriteFile(filepath.Join(dir, KeyFileName), []byte("not base64!"), 0o600)
			return Config{Dir: dir}
		}, nil, "not valid base64"},
		{"not a bbolt file", func(t *testing.T) Config {
			dir := written(t)
			b := bytes.Repeat([]byte("garbage!"), 4096)
			os.WriteFile(data(dir), b, 0o600)
			return Config{Dir: dir}
		}, ErrDamaged, "damaged file"},
		{"a bbolt file of something else", func(t *testing.T) Config {
			dir := t.TempDir()
			db, err := bolt.Open(data(dir), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
			db.Close()
			return Config{Dir: dir, Key: bytes.Repeat([]byte{1}, KeySize)}
		}, ErrDamaged, "not a credsign store"},
		{"newer format", func(t *testing.T) Config {
			dir := written(t)
			editDB(t, dir, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaFormat, []byte("3")) })
			return Config{Dir: dir}
		}, secrets.ErrNewerLayout, `store format version 3, this build reads up to 2`},
		{"format not a number", func(t *testing.T) Config {
			dir := written(t)
			editDB(t, dir, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaFormat, []byte("x")) })
			return Config{Dir: dir}
		}, ErrDamaged, `format version "x" is not a number`},
		{"format older than any migrated", func(t *testing.T) Config {
			dir := written(t)
			editDB(t, dir, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaFormat, []byte("1")) })
			return Config{Dir: dir}
		}, nil, `store format version 1 is older than any this build migrates`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.setup(t))
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v is not %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
		})
	}
}

// editDB changes a closed store's data file directly, as an attacker or a
// disk fault would.
func editDB(t *testing.T, dir string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, DataFileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// swap exchanges the values of two keys of bucket.
func swap(bucket []byte, k1, k2 []byte) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		v1, v2 := bytes.Clone(b.Get(k1)), bytes.Clone(b.Get(k2))
		if v1 == nil || v2 == nil {
			return fmt.Errorf("swap: %s or %s missing", k1, k2)
		}
		if err := b.Put(k1, v2); err != nil {
			return err
		}
		return b.Put(k2, v1)
	}
}

// TestSwappedRecordsDetected: a record copied or moved to another key (or
// an index entry pointed at another token) is refused as damaged, never read
// as the record of that key.
func TestSwappedRecordsDetected(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{9}, KeySize)
	setup := func(t *testing.T) (string, *secrets.Token) {
		dir := t.TempDir()
		s, err := Open(Config{Dir: dir, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"victim", "attacker"} {
			if _, err := s.PutDevice(ctx, secrets.Device{ID: id, Cloud: "aliyun", Secret: storetest.NewSecret()}, 0); err != nil {
				t.Fatal(err)
			}
			tok := secrets.Token{ID: "tok-" + id, Hash: storetest.Hash(id), Role: secrets.RoleDevice, DeviceID: id}
			if err := s.PutToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		return dir, &secrets.Token{Hash: storetest.Hash("victim")}
	}
	tests := []struct {
		name  string
		edit  func(c *sealer) func(tx *bolt.Tx) error
		check func(s *Store, tok *secrets.Token) error
	}{
		{"device values swapped",
			func(*sealer) func(tx *bolt.Tx) error {
				return swap(bucketDevices, []byte("victim"), []byte("attacker"))
			},
			func(s *Store, _ *secrets.Token) error { _, err := s.GetDevice(ctx, "victim"); return err }},
		{"device values swapped, listed",
			func(*sealer) func(tx *bolt.Tx) error {
				return swap(bucketDevices, []byte("victim"), []byte("attacker"))
			},
			func(s *Store, _ *secrets.Token) error {
				_, err := s.ListDevices(ctx, secrets.ListOptions{})
				return err
			}},
		{"token values swapped",
			func(*sealer) func(tx *bolt.Tx) error {
				return swap(bucketTokens, []byte("tok-victim"), []byte("tok-attacker"))
			},
			func(s *Store, _ *secrets.Token) error { _, err := s.GetToken(ctx, "tok-victim"); return err }},
		{"token index entries swapped",
			func(c *sealer) func(tx *bolt.Tx) error {
				return swap(bucketTokenHashes, c.hashKey(storetest.Hash("victim")), c.hashKey(storetest.Hash("attacker")))
			},
			func(s *Store, tok *secrets.Token) error { _, err := s.TokenByHash(ctx, tok.Hash); return err }},
		{"device value moved into tokens",
			func(*sealer) func(tx *bolt.Tx) error {
				return func(tx *bolt.Tx) error {
					return tx.Bucket(bucketTokens).Put([]byte("tok-victim"), bytes.Clone(tx.Bucket(bucketDevices).Get([]byte("victim"))))
				}
			},
			func(s *Store, _ *secrets.Token) error { _, err := s.GetToken(ctx, "tok-victim"); return err }},
		{"one bit flipped",
			func(*sealer) func(tx *bolt.Tx) error {
				return func(tx *bolt.Tx) error {
					v := bytes.Clone(tx.Bucket(bucketDevices).Get([]byte("victim")))
					v[len(v)-20] ^= 1
					return tx.Bucket(bucketDevices).Put([]byte("victim"), v)
				}
			},
			func(s *Store, _ *secrets.Token) error { _, err := s.GetDevice(ctx, "victim"); return err }},
	}
	c, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, tok := setup(t)
			editDB(t, dir, tc.edit(c))
			if s, err := Open(Config{Dir: dir, Key: key}); !errors.Is(err, ErrDamaged) || !errors.Is(err, ErrRolledBack) {
				if err == nil {
					s.Close()
				}
				t.Fatalf("Open after the edit: %v, want ErrDamaged and ErrRolledBack", err)
			}
			// An edit made while the store is open escapes the tally until
			// the next Open; the record's own seal still catches it.
			retally(t, dir, c)
			s := open(t, Config{Dir: dir, Key: key})
			err := tc.check(s, tok)
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("read after the edit: %v, want ErrDamaged", err)
			}
		})
	}
}

// retally seals the tally of the records as they are into dir's data file,
// as the store does for a file written before it kept one.
func retally(t *testing.T, dir string, c *sealer) {
	t.Helper()
	editDB(t, dir, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Delete(metaTally); err != nil {
			return err
		}
		return (&Store{c: c, tally: tallyState{mac: c.newTallyMAC()}}).checkTally(tx)
	})
}

// TestRollbackDetected: a record put back from an earlier copy of the data
// file, or added or removed, by someone without the key, is refused when
// the store opens; the whole file put back is not (docs/store.md: that
// needs state kept outside the file).
func TestRollbackDetected(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, KeySize)
	// before writes the first state, of which the test keeps a copy; after
	// moves the store on from there.
	before := func(t *testing.T, s *Store) {
		for _, id := range []string{"lamp", "door"} {
			if _, err := s.PutDevice(ctx, secrets.Device{ID: id, Cloud: "aliyun", Secret: storetest.NewSecret()}, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.PutToken(ctx, secrets.Token{ID: "tok-" + id, Hash: storetest.Hash(id), Role: secrets.RoleDevice, DeviceID: id, CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.PutKey(ctx, "enrolment-token.e1", []byte(`{"uses":1}`), 0); err != nil {
			t.Fatal(err)
		}
	}
	after := func(t *testing.T, s *Store) {
		if err := s.RevokeToken(ctx, "tok-lamp", time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutKey(ctx, "enrolment-token.e1", []byte(`{"uses":2,"revoked":true}`), 1); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDevice(ctx, "door"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutKey(ctx, "revoked-device-tokens.00", []byte(`["x"]`), 0); err != nil {
			t.Fatal(err)
		}
	}
	// restore puts key of bucket back as it was in the copy (absent there:
	// deleted).
	restore := func(bucket []byte, key string) func(old *bolt.Tx) func(tx *bolt.Tx) error {
		return func(old *bolt.Tx) func(tx *bolt.Tx) error {
			v := bytes.Clone(old.Bucket(bucket).Get([]byte(key)))
			return func(tx *bolt.Tx) error {
				if v == nil {
					return tx.Bucket(bucket).Delete([]byte(key))
				}
				return tx.Bucket(bucket).Put([]byte(key), v)
			}
		}
	}
	tests := []struct {
		name string
		edit func(old *bolt.Tx) func(tx *bolt.Tx) error
	}{
		{"a revoked token's record unrevoked", restore(bucketTokens, "tok-lamp")},
		{"an enrolment token's uses and revocation reset", restore(bucketKeys, "enrolment-token.e1")},
		{"a list of revoked device tokens emptied", restore(bucketKeys, "revoked-device-tokens.00")},
		{"a deleted device put back", restore(bucketDevices, "door")},
		{"a record removed", func(*bolt.Tx) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error { return tx.Bucket(bucketTokens).Delete([]byte("tok-door")) }
		}},
		{"the sealed tally put back with the record", func(old *bolt.Tx) func(tx *bolt.Tx) error {
			rec, tl := restore(bucketTokens, "tok-lamp")(old), restore(bucketMeta, string(metaTally))(old)
			return func(tx *bolt.Tx) error {
				if err := rec(tx); err != nil {
					return err
				}
				return tl(tx)
			}
		}},
	}
	// history makes a store in dir, copied to snapshot after before and
	// changed by after since.
	history := func(t *testing.T) (dir, snapshot string) {
		dir = t.TempDir()
		s := open(t, Config{Dir: dir, Key: key})
		before(t, s)
		s.Close()
		snapshot = filepath.Join(t.TempDir(), "earlier.db")
		copyTestFile(t, filepath.Join(dir, DataFileName), snapshot)
		s = open(t, Config{Dir: dir, Key: key})
		after(t, s)
		s.Close()
		return dir, snapshot
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, snapshot := history(t)
			old, err := bolt.Open(snapshot, 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			err = old.View(func(otx *bolt.Tx) error {
				editDB(t, dir, tc.edit(otx))
				return nil
			})
			old.Close()
			if err != nil {
				t.Fatal(err)
			}
			if s, err := Open(Config{Dir: dir, Key: key}); !errors.Is(err, ErrRolledBack) || !errors.Is(err, ErrDamaged) {
				if err == nil {
					s.Close()
				}
				t.Fatalf("Open: %v, want ErrRolledBack", err)
			}
		})
	}

	t.Run("whole file put back: not detected", func(t *testing.T) {
		dir, snapshot := history(t)
		copyTestFile(t, snapshot, filepath.Join(dir, DataFileName))
		s := open(t, Config{Dir: dir, Key: key})
		if tok, err := s.GetToken(ctx, "tok-lamp"); err != nil || tok.RevokedAt != nil {
			t.Errorf("the earlier file's token: %+v, %v; want it as it was, unrevoked", tok, err)
		}
	})
}

func copyTestFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLockedDir(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	start := time.Now()
	if s2, err := Open(Config{Dir: dir, LockTimeout: 300 * time.Millisecond}); err == nil {
		s2.Close()
		t.Fatal("second Open of the same directory succeeded")
	} else if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Open: %v", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 5*time.Second {
		t.Errorf("second Open gave up after %v, lock timeout 300ms", took)
	}
	s.Close()
	open(t, Config{Dir: dir}) // free again
}

// TestAbortedWriteChangesNothing makes one write of a shared transaction
// fail the transaction (as bbolt refusing a Put would; bbolt cannot easily be
// made to refuse one, so the write itself fails) and checks that the others
// still land, the failing one leaves nothing, and each gets its own outcome.
func TestAbortedWriteChangesNothing(t *testing.T) {
	ctx := context.Background()
	s := open(t, Config{Dir: t.TempDir()})
	put := func(id string) writeFn {
		return func(tx *bolt.Tx) error {
			return abort(tx.Bucket(bucketMeta).Put([]byte("test-"+id), []byte(id)))
		}
	}
	bad := func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put([]byte("test-bad"), []byte("half")); err != nil {
			return abort(err)
		}
		return abort(errors.New("disk on fire"))
	}
	conflict := func(*bolt.Tx) error { return secrets.ErrConflict }
	// Hold the writer so that the four writes queue up for one transaction.
	release := make(chan struct{})
	held := s.w.submit(func(*bolt.Tx) error { <-release; return nil })
	ops := []*writeOp{s.w.submit(put("a")), s.w.submit(bad, conflict), s.w.submit(put("c"))}
	close(release)
	if err := held.wait()[0]; err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, op := range ops {
		errs = append(errs, op.wait()...)
	}
	want := []string{"", "disk on fire", "version conflict", ""}
	for i, err := range errs {
		if got := fmt.Sprint(err); (err == nil) != (want[i] == "") || (err != nil && !strings.Contains(got, want[i])) {
			t.Errorf("write %d: %v, want %q", i, err, want[i])
		}
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if string(m.Get([]byte("test-a"))) != "a" || string(m.Get([]byte("test-c"))) != "c" {
			return errors.New("good writes missing")
		}
		if m.Get([]byte("test-bad")) != nil {
			return errors.New("the failed write left its first Put")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestUnencodableParams(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	d := secrets.Device{ID: "nan", Cloud: "aliyun", Params: map[string]any{"port": math.NaN()}, Secret: storetest.NewSecret()}
	_, err := s.PutDevice(context.Background(), d, 0)
	if !errors.Is(err, secrets.ErrInvalid) || strings.Contains(err.Error(), d.Secret) {
		t.Fatalf("PutDevice with NaN param: %v", err)
	}
	if _, err := s.GetDevice(context.Background(), "nan"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("rejected device stored: %v", err)
	}
}

func TestPutDevices(t *testing.T) {
	ctx := context.Background()
	s := open(t, Config{Dir: t.TempDir()})
	if _, err := s.PutDevice(ctx, secrets.Device{ID: "old", Cloud: "aliyun", Secret: "x"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutToken(ctx, secrets.Token{ID: "taken", Hash: storetest.Hash("taken"), Role: secrets.RoleProvisioner}); err != nil {
		t.Fatal(err)
	}
	tok := func(id string) *secrets.Token {
		return &secrets.Token{ID: "tok-" + id, Hash: storetest.Hash(id), Role: secrets.RoleDevice, DeviceID: id,
			CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 678, time.UTC)}
	}
	puts := []secrets.DevicePut{
		{Device: secrets.Device{ID: "new-1", Cloud: "aliyun", Secret: "s1"}, Token: tok("new-1")},
		{Device: secrets.Device{ID: "old", Cloud: "tencent", Secret: "s2"}, IfVersion: 0},                                                    // exists
		{Device: secrets.Device{ID: "old", Cloud: "tencent", Secret: "s3"}, IfVersion: 1},                                                    // upsert
		{Device: secrets.Device{ID: "bad/id", Cloud: "aliyun", Secret: "s4"}, IfVersion: -1},                                                 // invalid
		{Device: secrets.Device{ID: "new-2", Cloud: "aliyun", Secret: "s5"}, Token: &secrets.Token{ID: "taken", Hash: storetest.Hash("x2")}}, // token ID taken
		{Device: secrets.Device{ID: "new-1", Cloud: "huawei", Secret: "s6"}, IfVersion: 0},                                                   // created above
	}
	want := []error{nil, secrets.ErrConflict, nil, secrets.ErrInvalid, secrets.ErrConflict, secrets.ErrConflict}
	res := s.PutDevices(ctx, puts)
	if len(res) != len(puts) {
		t.Fatalf("%d results for %d items", len(res), len(puts))
	}
	for i, r := range res {
		if !errors.Is(r.Err, want[i]) || (want[i] == nil) != (r.Err == nil) {
			t.Errorf("item %d: %v, want %v", i, r.Err, want[i])
		}
		if r.Err != nil && r.Device.ID != "" {
			t.Errorf("item %d failed but returned a device", i)
		}
	}
	if res[2].Device.Version != 2 || res[0].Device.Version != 1 {
		t.Errorf("versions %d and %d, want 1 and 2", res[0].Device.Version, res[2].Device.Version)
	}
	// A device created with its first token is stamped with the token's time.
	if got, _ := s.GetDevice(ctx, "new-1"); !got.CreatedAt.Equal(puts[0].Token.CreatedAt) || !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("new-1 stamped %v/%v, want its token's time %v", got.CreatedAt, got.UpdatedAt, puts[0].Token.CreatedAt)
	}
	if got, err := s.TokenByHash(ctx, storetest.Hash("new-1")); err != nil || got.DeviceID != "new-1" {
		t.Errorf("token of new-1: %+v, %v", got, err)
	}
	if _, err := s.GetDevice(ctx, "new-2"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("device whose token conflicted was written: %v", err)
	}
	if d, err := s.GetDevice(ctx, "new-1"); err != nil || d.Cloud != "aliyun" {
		t.Errorf("new-1 = %+v, %v; want the first write only", d.Cloud, err)
	}
}

// TestConcurrentWritersShareCommits checks that 32 concurrent writers all
// land and need far fewer transactions than writes (group commit).
func TestConcurrentWritersShareCommits(t *testing.T) {
	ctx := context.Background()
	s := open(t, Config{Dir: t.TempDir()})
	before := s.w.commits.Load()
	const writers, each = 32, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.PutDevice(ctx, secrets.Device{ID: fmt.Sprintf("w%d-%d", w, i), Cloud: "aliyun", Secret: "x"}, 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	page, err := s.ListDevices(ctx, secrets.ListOptions{Limit: 1000})
	if err != nil || len(page.Devices) != writers*each {
		t.Fatalf("listed %d devices, %v; want %d", len(page.Devices), err, writers*each)
	}
	commits := s.w.commits.Load() - before
	t.Logf("%d writes in %d commits", writers*each, commits)
	if commits >= writers*each {
		t.Errorf("%d writes took %d commits: no group commit", writers*each, commits)
	}
}

func TestKeyFromEnv(t *testing.T) {
	key := bytes.Repeat([]byte{0xAB}, KeySize)
	tests := []struct {
		name    string
		env     string
		want    []byte
		wantErr string
	}{
		{"unset", "", nil, ""},
		{"valid", FormatKey(key), key, ""},
		{"valid with newline", FormatKey(key) + "\n", key, ""},
		{"not base64", "%%%not-base64%%%", nil, "not valid base64"},
		{"too short", FormatKey(key[:16]), nil, "key is 16 bytes, want 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvKey, tc.env)
			got, err := KeyFromEnv()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), EnvKey) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), tc.env) {
					t.Fatalf("error quotes the key text: %v", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("KeyFromEnv = %x, %v; want %x", got, err, tc.want)
			}
		})
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	c, err := newSealer(bytes.Repeat([]byte{3}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.seal(bucketDevices, []byte("a"), []byte("same"))
	b, _ := c.seal(bucketDevices, []byte("a"), []byte("same"))
	if bytes.Equal(a[1:1+nonceSize], b[1:1+nonceSize]) {
		t.Fatal("two seals used the same nonce")
	}
}

func FuzzOpenRecord(f *testing.F) {
	c, err := newSealer(bytes.Repeat([]byte{5}, KeySize))
	if err != nil {
		f.Fatal(err)
	}
	valid, err := c.sealDevice(secrets.Device{ID: "a", Cloud: "aliyun", Secret: "x", Version: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("a"), valid)
	f.Add([]byte("b"), valid)
	f.Add([]byte("a"), valid[:nonceSize])
	f.Add([]byte("a"), []byte{})
	f.Fuzz(func(t *testing.T, id, value []byte) {
		d, err := c.openDevice(id, value)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("openDevice error %v is not ErrDamaged", err)
			}
			return
		}
		if d.ID != string(id) || string(id) != "a" {
			t.Fatalf("opened a record as %q", id)
		}
	})
}

func FuzzDecodeLegacy(f *testing.F) {
	key := bytes.Repeat([]byte{5}, KeySize)
	st := &legacyState{
		Devices: map[string]secrets.Device{"a": {ID: "a", Cloud: "aliyun", Secret: "x", Version: 1}},
		Tokens:  map[string]secrets.Token{"t": {ID: "t", Hash: storetest.Hash("t")}},
	}
	valid := encodeLegacy(f, key, st)
	f.Add(valid)
	f.Add(valid[:legacyHeaderSize])
	f.Add([]byte(legacyMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeLegacy(key, data)
		if err != nil {
			return
		}
		if err := got.check(); err != nil {
			t.Fatalf("decodeLegacy accepted a state that fails check: %v", err)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte(FormatKey(make([]byte, KeySize))))
	f.Add([]byte(" \n"))
	f.Add([]byte("AAAA"))
	f.Fuzz(func(t *testing.T, text []byte) {
		key, err := ParseKey(text)
		if err != nil {
			if len(text) > 8 && strings.Contains(err.Error(), string(text)) {
				t.Fatalf("error quotes the key text: %v", err)
			}
			return
		}
		if len(key) != KeySize {
			t.Fatalf("ParseKey returned %d bytes", len(key))
		}
		if again, err := ParseKey([]byte(FormatKey(key))); err != nil || !bytes.Equal(again, key) {
			t.Fatalf("round trip: %x, %v", again, err)
		}
	})
}

// TestPutDevicesHelper checks secrets.PutDevices on a store with the bulk
// method and, through a wrapper that hides it, on one without.
func TestPutDevicesHelper(t *testing.T) {
	ctx := context.Background()
	for _, bulk := range []bool{true, false} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			var s secrets.Store = open(t, Config{Dir: t.TempDir()})
			if !bulk {
				s = struct{ secrets.Store }{s}
			}
			if _, ok := s.(secrets.BulkDeviceStore); ok != bulk {
				t.Fatalf("store is a BulkDeviceStore: %v", ok)
			}
			if err := s.PutToken(ctx, secrets.Token{ID: "taken", Hash: storetest.Hash("taken")}); err != nil {
				t.Fatal(err)
			}
			res := secrets.PutDevices(ctx, s, []secrets.DevicePut{
				{Device: secrets.Device{ID: "a", Cloud: "aliyun", Secret: "x"}, Token: &secrets.Token{ID: "tok-a", Hash: storetest.Hash("a")}},
				{Device: secrets.Device{ID: "b", Cloud: "aliyun", Secret: "x"}, Token: &secrets.Token{ID: "taken", Hash: storetest.Hash("b")}},
				// One ID three times: written in order, whatever the concurrency.
				{Device: secrets.Device{ID: "c", Cloud: "aliyun", Secret: "x"}, IfVersion: 0},
				{Device: secrets.Device{ID: "c", Cloud: "tencent", Secret: "y"}, IfVersion: 0},
				{Device: secrets.Device{ID: "c", Cloud: "huawei", Secret: "z"}, IfVersion: 1},
			})
			if res[2].Err != nil || !errors.Is(res[3].Err, secrets.ErrConflict) || res[4].Err != nil || res[4].Device.Version != 2 {
				t.Fatalf("one ID three times: %v, %v, %+v; want created, conflict, version 2", res[2].Err, res[3].Err, res[4])
			}
			if res[0].Err != nil || res[0].Device.Version != 1 {
				t.Fatalf("first item: %+v", res[0])
			}
			if !errors.Is(res[1].Err, secrets.ErrConflict) {
				t.Fatalf("second item: %v, want a token conflict", res[1].Err)
			}
			// Only the bulk store writes device and token atomically.
			_, err := s.GetDevice(ctx, "b")
			if bulk != errors.Is(err, secrets.ErrNotFound) {
				t.Fatalf("device of the failed item: %v (bulk %v)", err, bulk)
			}
			if !bulk && !strings.Contains(res[1].Err.Error(), "written, its token not") {
				t.Fatalf("fallback error does not say the device was written: %v", res[1].Err)
			}
		})
	}
}

// TestDeviceWithoutSecretVersion reads a device record sealed before
// secret versions existed: it reads as secret version 1, and its first
// rotation makes it 2.
func TestDeviceWithoutSecretVersion(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rec := secrets.Device{ID: "old", Cloud: "aliyun", Secret: "old-secret", Version: 1, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	sealed, err := s.c.sealDevice(rec) // SecretVersion 0: as an older credsign wrote it
	if err != nil {
		t.Fatal(err)
	}
	if err := s.write(ctx, func(tx *bolt.Tx) error { return s.put(tx, bucketDevices, []byte("old"), sealed) }); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDevice(ctx, "old")
	if err != nil || d.SecretVersion != 1 {
		t.Fatalf("GetDevice: secretVersion %d, %v", d.SecretVersion, err)
	}
	d.Secret = "new-secret"
	got, err := s.PutDevice(ctx, d, 1)
	if err != nil || got.SecretVersion != 2 || got.PreviousSecret != "old-secret" {
		t.Fatalf("first rotation: secretVersion %d, previous kept %t, %v", got.SecretVersion, got.PreviousSecret == "old-secret", err)
	}
}
