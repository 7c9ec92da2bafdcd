package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/credsign/credsign/secrets"
)

var (
	_ secrets.Snapshotter = (*Store)(nil)
	_ secrets.Enumerator  = (*Store)(nil)
)

// Snapshot implements secrets.Snapshotter: it writes the data file as of
// one instant to w from a bbolt read transaction (tx.WriteTo), while writes
// go on. The copy is a complete data file, meta bucket (format, key check
// and any record tally) included, sealed under the same key: it opens with
// Open given that key, in a directory of its own as DataFileName. Cost: one
// sequential read of the file; writers do not wait, but pages they free
// cannot be reused until the copy ends, so the file may grow meanwhile by
// what is written during the copy.
func (s *Store) Snapshot(ctx context.Context, w io.Writer, size func(n int64)) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("filestore: snapshot: %w", err)
	}
	return n, nil
}

// ctxWriter stops a long copy when its context ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// IDs implements secrets.Enumerator. Cost: one read transaction walking one
// bucket's keys; no record is opened.
func (s *Store) IDs(ctx context.Context, kind secrets.Kind) ([]string, error) {
	bucket, ok := kindBuckets[kind]
	if !ok {
		return nil, fmt.Errorf("filestore: list %q: %w", kind, secrets.ErrInvalid)
	}
	var ids []string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ids = nil
		return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("filestore: list %s: %w", kind, err)
	}
	return ids, nil
}

// kindBuckets maps each kind of record to its bucket.
var kindBuckets = map[secrets.Kind][]byte{
	secrets.KindDevice: bucketDevices,
	secrets.KindGroup:  bucketGroups,
	secrets.KindToken:  bucketTokens,
	secrets.KindKey:    bucketKeys,
}

// Counts is how many records of each kind a store holds.
type Counts map[secrets.Kind]int

// Check reads every record of the store as one instant sees it: it checks
// bbolt's page structure (tx.Check), opens every device, group, token and
// key record (so each one authenticates under the key), and checks that the
// token hash index and the tokens match one for one. It returns the count
// of each kind. Cost: one read transaction over the whole file, one AES-GCM
// open per record.
func (s *Store) Check(ctx context.Context) (Counts, error) {
	counts := Counts{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		clear(counts)
		var damage error
		for err := range tx.Check() { // drained: Check's goroutine sends until done
			if damage == nil {
				damage = fmt.Errorf("%w: %w", ErrDamaged, err)
			}
		}
		if damage != nil {
			return damage
		}
		open := map[secrets.Kind]func(k, v []byte) error{
			secrets.KindDevice: func(k, v []byte) error { _, err := s.c.openDevice(k, v); return err },
			secrets.KindGroup:  func(k, v []byte) error { _, err := s.c.openGroup(k, v); return err },
			secrets.KindKey: func(k, _ []byte) error {
				_, _, err := s.readKey(tx, string(k))
				return err
			},
			secrets.KindToken: func(k, v []byte) error {
				t, err := s.c.openToken(k, v)
				if err != nil {
					return err
				}
				if id := tx.Bucket(bucketTokenHashes).Get(s.c.hashKey(t.Hash)); string(id) != t.ID {
					return fmt.Errorf("%w: token %q is missing from the hash index", ErrDamaged, t.ID)
				}
				return nil
			},
		}
		for _, kind := range secrets.Kinds {
			err := tx.Bucket(kindBuckets[kind]).ForEach(func(k, v []byte) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				counts[kind]++
				return open[kind](k, v)
			})
			if err != nil {
				return err
			}
		}
		if n := tx.Bucket(bucketTokenHashes).Stats().KeyN; n != counts[secrets.KindToken] {
			return fmt.Errorf("%w: the token hash index has %d entries for %d tokens", ErrDamaged, n, counts[secrets.KindToken])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("filestore: check: %w", err)
	}
	return counts, nil
}

// VerifyBackup checks that the file at path, a Snapshot, is a store that
// key opens and that every record in it reads: it copies the file into a
// new temporary directory, opens the copy with Open (so every check Open
// makes applies, the key check and any record tally included), runs Check
// and removes the copy. The file itself is never written. Cost: one copy of
// the file and one pass over it.
func VerifyBackup(ctx context.Context, path string, key []byte) (Counts, error) {
	tmp, err := os.MkdirTemp("", "credsign-verify-*")
	if err != nil {
		return nil, fmt.Errorf("filestore: verify %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	if err := checkLength(path); err != nil {
		return nil, fmt.Errorf("filestore: verify %s: %w", path, err)
	}
	if err := copyFile(ctx, path, filepath.Join(tmp, DataFileName)); err != nil {
		return nil, fmt.Errorf("filestore: verify %s: %w", path, err)
	}
	s, err := Open(Config{Dir: tmp, Key: key, LockTimeout: 100 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("filestore: verify %s: %w", path, err)
	}
	defer s.Close()
	counts, err := s.Check(ctx)
	if err != nil {
		return nil, fmt.Errorf("filestore: verify %s: %w", path, err)
	}
	return counts, nil
}

// bbolt's meta page, as far as checkLength reads it: after the 16-byte
// page header, magic (4 bytes), version (4), page size (4), flags (4), root
// bucket (16), freelist page (8), high water mark (8, the page count),
// transaction ID (8), then an FNV-64a checksum of the 64 bytes before it.
const (
	boltMagic     = 0xED0CDAED
	metaOffset    = 16
	metaSumOffset = 56
	metaPageSize  = 8
	metaHWM       = 40
	metaTxID      = 48
)

// checkLength refuses a data file shorter than its newest valid meta page
// says it is (a copy cut short), before bbolt opens it: bbolt trusts that
// length and would read past the end of the file.
func checkLength(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var first [metaOffset + metaSumOffset + 8]byte
	if _, err := io.ReadFull(f, first[:]); err != nil {
		return fmt.Errorf("%w: too short to be a store (%d bytes)", ErrDamaged, st.Size())
	}
	pageSize := int64(binary.LittleEndian.Uint32(first[metaOffset+metaPageSize:]))
	if pageSize < 512 || pageSize > 1<<20 {
		pageSize = 4096 // a damaged first meta: try the second at the usual place
	}
	var newest struct{ txid, pages uint64 }
	found := false
	for i := int64(0); i < 2; i++ {
		var m [metaOffset + metaSumOffset + 8]byte
		if _, err := f.ReadAt(m[:], i*pageSize); err != nil {
			continue
		}
		meta := m[metaOffset:]
		h := fnv.New64a()
		h.Write(meta[:metaSumOffset])
		if binary.LittleEndian.Uint32(meta) != boltMagic || h.Sum64() != binary.LittleEndian.Uint64(meta[metaSumOffset:]) {
			continue
		}
		if txid := binary.LittleEndian.Uint64(meta[metaTxID:]); !found || txid > newest.txid {
			newest.txid, newest.pages, found = txid, binary.LittleEndian.Uint64(meta[metaHWM:]), true
		}
	}
	if !found {
		return fmt.Errorf("%w: not a bbolt file (no valid meta page)", ErrDamaged)
	}
	if want := int64(newest.pages) * pageSize; st.Size() < want {
		return fmt.Errorf("%w: %d bytes, but the file says it has %d: the copy was cut short", ErrDamaged, st.Size(), want)
	}
	return nil
}

// ErrInUse means the data directory's store is open in another process.
var ErrInUse = errors.New("store in use by another process")

// Restore installs the backup file at path as the data file of cfg.Dir,
// after VerifyBackup has checked it with cfg's key (Config.Key, else
// Config.KeyFile, else Dir/store.key). A data file already in Dir is
// refused unless replace is set; then it must not be open in any process
// (ErrInUse: stop the server first) and is kept beside the new one as
// DataFileName+".replaced-<time>". The new file is written next to its
// place, synced, and renamed into it, so a crash leaves either store whole.
// It returns the backup's counts.
func Restore(ctx context.Context, path string, cfg Config, replace bool) (Counts, error) {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil || cfg.Dir == "" {
		return nil, errors.New("filestore: restore: no data directory given")
	}
	dst := filepath.Join(dir, DataFileName)
	dbExists, err := exists(dst)
	if err != nil {
		return nil, fmt.Errorf("filestore: restore: %w", err)
	}
	if dbExists && !replace {
		return nil, fmt.Errorf("filestore: restore: %s already holds a store; move it aside or replace it (stop the server first)", dir)
	}
	key, err := storeKey(dir, cfg, true, dst)
	if err != nil {
		return nil, fmt.Errorf("filestore: restore: %w", err)
	}
	defer clear(key)
	counts, err := VerifyBackup(ctx, path, key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: restore: %w", err)
	}
	tmp := dst + ".restoring"
	if err := copyFile(ctx, path, tmp); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("filestore: restore: %w", err)
	}
	defer os.Remove(tmp)
	if dbExists {
		// Hold the lock while the files change places, so that no server
		// opens the old file meanwhile.
		db, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond})
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("filestore: restore: %s: %w (stop the server first)", dst, ErrInUse)
		}
		if err != nil {
			return nil, fmt.Errorf("filestore: restore: %s: %w", dst, err)
		}
		defer db.Close()
		if err := os.Rename(dst, dst+".replaced-"+time.Now().UTC().Format("20060102T150405Z")); err != nil {
			return nil, fmt.Errorf("filestore: restore: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("filestore: restore: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("filestore: restore: %w", err)
	}
	return counts, nil
}

// WriteKeyFile writes key, in the text form ParseKey reads, to a new file
// at path (mode 0600); it never replaces an existing file.
func WriteKeyFile(path string, key []byte) error {
	if err := createKeyFile(path, key); err != nil {
		return fmt.Errorf("filestore: write key file %s: %w", path, err)
	}
	return nil
}

// copyFile copies src to a new file dst (mode 0600) and syncs it.
func copyFile(ctx context.Context, src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(ctxWriter{ctx: ctx, w: out}, in); err != nil {
		return err
	}
	return out.Sync()
}

var _ secrets.Importer = (*Store)(nil)

// ImportDevice implements secrets.Importer. Cost: as PutDevice.
func (s *Store) ImportDevice(ctx context.Context, d secrets.Device, ifVersion int64) (secrets.Device, error) {
	rec, err := secrets.NormalizeDevice(d)
	if err != nil || !secrets.ValidID(d.ID) {
		return secrets.Device{}, fmt.Errorf("filestore: import device %.64q: %w", d.ID, errors.Join(err, secrets.ErrInvalid))
	}
	rec.CreatedAt, rec.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	rec.SecretVersion, rec.PreviousSecret, rec.SecretRotatedAt = d.SecretVersion, d.PreviousSecret, d.SecretRotatedAt
	out, err := writeRecord(ctx, s, bucketDevices, rec.ID, ifVersion, s.c.openDevice, deviceVersion, s.c.sealDevice,
		func(old *secrets.Device) secrets.Device { rec.Version = stored(old, deviceVersion) + 1; return rec })
	if err != nil {
		return secrets.Device{}, fmt.Errorf("filestore: import device %q: %w", d.ID, err)
	}
	return out, nil
}

// ImportGroup implements secrets.Importer. Cost: as PutGroup.
func (s *Store) ImportGroup(ctx context.Context, g secrets.Group, ifVersion int64) (secrets.Group, error) {
	rec, err := secrets.NormalizeGroup(g)
	if err != nil || !secrets.ValidID(g.ID) {
		return secrets.Group{}, fmt.Errorf("filestore: import group %.64q: %w", g.ID, errors.Join(err, secrets.ErrInvalid))
	}
	rec.CreatedAt, rec.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC()
	out, err := writeRecord(ctx, s, bucketGroups, rec.ID, ifVersion, s.c.openGroup, groupVersion, s.c.sealGroup,
		func(old *secrets.Group) secrets.Group { rec.Version = stored(old, groupVersion) + 1; return rec })
	if err != nil {
		return secrets.Group{}, fmt.Errorf("filestore: import group %q: %w", g.ID, err)
	}
	return out, nil
}

// writeRecord writes next(old) at id of bucket, old being the record
// stored there (nil: none), under the compare-and-set rule of ifVersion on
// its version, and returns what it wrote.
func writeRecord[T any](ctx context.Context, s *Store, bucket []byte, id string, ifVersion int64,
	open func(id, v []byte) (T, error), version func(T) int64, seal func(T) ([]byte, error), next func(old *T) T) (T, error) {
	key := []byte(id)
	var out T
	err := s.write(ctx, func(tx *bolt.Tx) error {
		var old *T
		if v := tx.Bucket(bucket).Get(key); v != nil {
			rec, err := open(key, v)
			if err != nil {
				return err
			}
			old = &rec
		}
		if err := secrets.CheckVersion(stored(old, version), ifVersion); err != nil {
			return err
		}
		rec := next(old)
		sealed, err := seal(rec)
		if err != nil {
			return err
		}
		if err := s.put(tx, bucket, key, sealed); err != nil {
			return abort(err)
		}
		out = rec
		return nil
	})
	return out, err
}

// stored is the version of old, 0 when it is nil (no record).
func stored[T any](old *T, version func(T) int64) int64 {
	if old == nil {
		return 0
	}
	return version(*old)
}

func deviceVersion(d secrets.Device) int64 { return d.Version }
func groupVersion(g secrets.Group) int64   { return g.Version }
