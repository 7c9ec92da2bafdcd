package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/secrets"
)

// backupOf snapshots s into a file and returns its path.
func backupOf(t *testing.T, s *Store) string {
	t.Helper()
	var buf bytes.Buffer
	var size int64 = -1
	n, err := s.Snapshot(context.Background(), &buf, func(n int64) { size = n })
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || size != n {
		t.Fatalf("Snapshot wrote %d bytes, said %d, announced %d", buf.Len(), n, size)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSnapshotWhileWriting takes snapshots while 8 writers put devices and
// tokens: no write fails or waits for the copy, and every snapshot opens,
// checks whole, and holds every write acknowledged before it began and
// none that began after it ended.
func TestSnapshotWhileWriting(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	s := open(t, Config{Dir: t.TempDir(), Key: key})
	ctx := context.Background()
	var (
		stop  atomic.Bool
		acked atomic.Int64 // devices acknowledged
		wg    sync.WaitGroup
		errs  = make(chan error, 8)
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("w%d-%06d", w, i)
				if _, err := s.PutDevice(ctx, secrets.Device{ID: id, Cloud: "aliyun", Secret: "s-" + id}, 0); err != nil {
					errs <- err
					return
				}
				if err := s.PutToken(ctx, secrets.Token{ID: "t" + id, Hash: fmt.Sprintf("%064x", w<<32|i), Role: secrets.RoleDevice, DeviceID: id, CreatedAt: time.Now()}); err != nil {
					errs <- err
					return
				}
				acked.Add(1)
			}
		}()
	}
	for range 5 {
		// Each copy is taken with more devices acknowledged since the last.
		last := acked.Load()
		testutil.Eventually(t, 10*time.Second, func() error {
			if len(errs) > 0 {
				t.Fatalf("a write failed during the backups: %v", <-errs)
			}
			if acked.Load() < last+16 {
				return fmt.Errorf("%d devices acknowledged since the last copy, want 16", acked.Load()-last)
			}
			return nil
		})
		before := acked.Load()
		path := backupOf(t, s)
		after := acked.Load()
		counts, err := VerifyBackup(ctx, path, key)
		if err != nil {
			t.Fatal(err)
		}
		// A device and its token are two writes: the copy may hold a
		// device whose token came later.
		if d := int64(counts[secrets.KindDevice]); d < before || d > after+8 {
			t.Errorf("snapshot holds %d devices; %d were acknowledged before it, %d after", d, before, after)
		}
		if tk := counts[secrets.KindToken]; tk > counts[secrets.KindDevice] {
			t.Errorf("snapshot holds %d tokens for %d devices", tk, counts[secrets.KindDevice])
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a write failed during the backups: %v", err)
	}
}

// TestVerifyBackupRefuses: a copy that is cut short, changed, opened with
// another key, or not a store at all fails verification with a clear error,
// and verification never changes the file.
func TestVerifyBackupRefuses(t *testing.T) {
	key := bytes.Repeat([]byte{1}, KeySize)
	dir := t.TempDir()
	s := open(t, Config{Dir: dir, Key: key})
	ctx := context.Background()
	for i := range 50 {
		if _, err := s.PutDevice(ctx, secrets.Device{ID: fmt.Sprintf("d%03d", i), Cloud: "aliyun", Secret: strings.Repeat("x", 200)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	good := backupOf(t, s)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := VerifyBackup(ctx, good, key); err != nil || c[secrets.KindDevice] != 50 {
		t.Fatalf("good backup: %v %v", c, err)
	}
	after, _ := os.ReadFile(good)
	if !bytes.Equal(raw, after) {
		t.Fatal("VerifyBackup changed the file")
	}
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "b.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A device record changed in place (one bit of its ciphertext).
	tampered := filepath.Join(t.TempDir(), DataFileName)
	if err := os.WriteFile(tampered, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	editDB(t, filepath.Dir(tampered), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		v := bytes.Clone(b.Get([]byte("d007")))
		v[len(v)-1] ^= 1
		return b.Put([]byte("d007"), v)
	})
	for _, tc := range []struct {
		name string
		path string
		key  []byte
		want error
		text string
	}{
		{"truncated", write(raw[:len(raw)/2]), key, ErrDamaged, ""},
		{"other key", good, bytes.Repeat([]byte{2}, KeySize), ErrWrongKey, ""},
		{"record changed", tampered, key, ErrDamaged, ""}, // the record tally refuses it at open, before any record is read
		{"not a store", write([]byte("hello, not a database")), key, nil, "b.db"},
		{"missing", filepath.Join(t.TempDir(), "none.db"), key, os.ErrNotExist, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyBackup(ctx, tc.path, tc.key)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.text)
			}
		})
	}
}

// TestRestore: a backup is installed into an empty directory; a directory
// with a store is refused unless replace, and refused while the store is
// open; the replaced file is kept.
func TestRestore(t *testing.T) {
	key := bytes.Repeat([]byte{3}, KeySize)
	ctx := context.Background()
	src := open(t, Config{Dir: t.TempDir(), Key: key})
	if _, err := src.PutDevice(ctx, secrets.Device{ID: "kept", Cloud: "aliyun", Secret: "s"}, 0); err != nil {
		t.Fatal(err)
	}
	backup := backupOf(t, src)

	dir := t.TempDir()
	if _, err := Restore(ctx, backup, Config{Dir: dir}, false); err == nil || !strings.Contains(err.Error(), "key file") {
		t.Fatalf("restore without a key: %v", err)
	}
	c, err := Restore(ctx, backup, Config{Dir: dir, Key: key}, false)
	if err != nil || c[secrets.KindDevice] != 1 {
		t.Fatalf("restore: %v %v", c, err)
	}
	if _, err := Restore(ctx, backup, Config{Dir: dir, Key: key}, false); err == nil || !strings.Contains(err.Error(), "already holds a store") {
		t.Fatalf("restore over a store: %v", err)
	}
	s, err := Open(Config{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutDevice(ctx, secrets.Device{ID: "later", Cloud: "aliyun", Secret: "s"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, backup, Config{Dir: dir, Key: key}, true); !errors.Is(err, ErrInUse) {
		t.Fatalf("restore over a store in use: %v", err)
	}
	s.Close()
	if _, err := Restore(ctx, backup, Config{Dir: dir, Key: key}, true); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{Dir: dir, Key: key})
	if _, err := s.GetDevice(ctx, "later"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("the restored store has the device written after the backup: %v", err)
	}
	if _, err := s.GetDevice(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, DataFileName+".replaced-*"))
	if len(kept) != 1 {
		t.Fatalf("replaced file not kept: %v", kept)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.restoring")); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestIDs lists every kind, sorted, and refuses an unknown kind.
func TestIDs(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	ctx := context.Background()
	for _, id := range []string{"b", "a", "c"} {
		if _, err := s.PutDevice(ctx, secrets.Device{ID: id, Cloud: "aliyun"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutKey(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind secrets.Kind
		want string
	}{
		{secrets.KindDevice, "a,b,c"},
		{secrets.KindKey, "k"},
		{secrets.KindToken, ""},
		{secrets.KindGroup, ""},
	} {
		ids, err := s.IDs(ctx, tc.kind)
		if err != nil || strings.Join(ids, ",") != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.kind, ids, err, tc.want)
		}
	}
	if _, err := s.IDs(ctx, "secrets"); !errors.Is(err, secrets.ErrInvalid) {
		t.Errorf("unknown kind: %v", err)
	}
}

// FuzzCheckLength: whatever the bytes, checkLength answers without
// panicking, and accepts a file only if it is as long as its newest valid
// meta page says.
func FuzzCheckLength(f *testing.F) {
	s, err := Open(Config{Dir: f.TempDir(), Key: bytes.Repeat([]byte{9}, KeySize)})
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.Snapshot(context.Background(), &buf, nil); err != nil {
		f.Fatal(err)
	}
	s.Close()
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()-1])
	f.Add(buf.Bytes()[:4096])
	f.Add([]byte("not a database"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "f.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := checkLength(path)
		if err != nil && !errors.Is(err, ErrDamaged) {
			t.Fatalf("error %v does not wrap ErrDamaged", err)
		}
	})
}
