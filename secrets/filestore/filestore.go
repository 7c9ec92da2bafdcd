// Package filestore is the embedded secrets.Store, the default backend when
// no Vault is configured: a bbolt database (go.etcd.io/bbolt, the engine
// under etcd) in a data directory.
//
// The data file, Dir/store.db, holds one record per key: a device per
// device ID, a token per token ID, and an index from token hash to token ID.
// Every device and token value is sealed on its own with AES-256-GCM under
// a fresh random nonce, its bucket and key bound in as associated data, so a
// value changed, or moved to another key, fails authentication instead of
// being read as another record. Keys are plain: device and token IDs show in
// the file, their contents (params, secret, labels, role, device, times) and
// token hashes do not. The 32-byte key never goes into the data file: it is
// given in Config.Key (see KeyFromEnv) or kept in a key file, Dir/store.key
// by default, created with mode 0600 on first start.
//
// Writes are bbolt transactions, so a crash (kill -9 included) leaves every
// acknowledged write and nothing half-written. A write rewrites only the
// pages of the B+tree path to its record: its cost is O(record), not
// O(store). Concurrent writes share transactions (group commit, see
// committer), so they share an fsync; every write returns only once its
// transaction is durable. docs/store.md gives the cost of each operation.
//
// A data directory written by the earlier one-file format (Dir/store.enc)
// is migrated on first start and the old file renamed to
// store.enc.migrated.
//
// A Store is safe for concurrent use. bbolt's flock on store.db keeps a
// second process out of the directory.
package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/credsign/credsign/secrets"
)

// File names inside Config.Dir.
const (
	DataFileName = "store.db"
	KeyFileName  = "store.key"
	// LegacyFileName is the data file of the earlier format; Open migrates
	// it and renames it to LegacyFileName+MigratedSuffix.
	LegacyFileName = "store.enc"
	MigratedSuffix = ".migrated"
	// LockFileName is the earlier format's lock file, taken while migrating
	// so that no older credsign writes the legacy file meanwhile.
	LockFileName = "store.lock"
)

// DefaultLockTimeout is how long Open waits for another process to release
// the data file.
const DefaultLockTimeout = 2 * time.Second

// Config says where the store lives and which key opens it.
type Config struct {
	// Dir is the data directory, created (mode 0700) if missing.
	Dir string
	// Key is the 32-byte AES-256 key. When nil, the key is read from KeyFile.
	Key []byte
	// KeyFile holds the key as base64 text; default Dir/store.key. It is
	// created with a new random key (mode 0600) when neither it nor a data
	// file exists yet. It may not be a data file itself.
	KeyFile string
	// LockTimeout bounds the wait for another process holding the data
	// file; default DefaultLockTimeout.
	LockTimeout time.Duration
}

// Store is the embedded secrets.Store. Create it with Open.
type Store struct {
	path string
	db   *bolt.DB
	c    *sealer
	w    *committer
	// tally is the keyed hash of every record (see tally); the committer
	// keeps it.
	tally tallyState

	mu     sync.RWMutex // write submission against Close
	closed bool
}

var (
	_ secrets.Store           = (*Store)(nil)
	_ secrets.BulkDeviceStore = (*Store)(nil)
)

var errClosed = fmt.Errorf("store closed: %w", secrets.ErrUnavailable)

// Open opens (or creates) the store in cfg.Dir, migrating a legacy data
// file if there is one.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("filestore: open: no data directory configured")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: open: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: open: %w", err)
	}
	s, err := openDir(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("filestore: open %s: %w", dir, err)
	}
	return s, nil
}

func openDir(dir string, cfg Config) (*Store, error) {
	path := filepath.Join(dir, DataFileName)
	legacyPath := filepath.Join(dir, LegacyFileName)
	dbExists, err := exists(path)
	if err != nil {
		return nil, err
	}
	legacyExists, err := exists(legacyPath)
	if err != nil {
		return nil, err
	}
	key, err := storeKey(dir, cfg, dbExists || legacyExists, path, legacyPath)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	c, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	var legacy *legacyFile
	if legacyExists {
		lock, err := lockDir(filepath.Join(dir, LockFileName))
		if err != nil {
			return nil, err
		}
		defer lock.Close()
		if legacy, err = readLegacy(legacyPath, key); err != nil {
			return nil, err
		}
	}
	timeout := cfg.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("lock: %s is in use by another process (still locked after %v)", DataFileName, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("%s: %w: %w", DataFileName, ErrDamaged, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", DataFileName, err)
	}
	s := &Store{path: path, db: db, c: c, tally: tallyState{mac: c.newTallyMAC()}}
	if err := s.setup(legacy); err != nil {
		db.Close()
		return nil, err
	}
	if legacy != nil {
		if err := os.Rename(legacyPath, legacyPath+MigratedSuffix); err != nil {
			db.Close()
			return nil, fmt.Errorf("migrated %s but cannot rename it: %w", LegacyFileName, err)
		}
		if err := syncDir(dir); err != nil {
			db.Close()
			return nil, err
		}
	}
	s.w = newCommitter(db, s)
	return s, nil
}

// fillPercent is how full bbolt fills a page of devices or tokens before it
// splits it (its default is 0.5). IDs often come in order (a factory batch,
// dev-000001, dev-000002, …), which leaves half-empty pages behind at 0.5;
// random IDs still split pages as they fill.
const fillPercent = 0.9

// packBuckets sets fillPercent on the record buckets of tx.
func packBuckets(tx *bolt.Tx) {
	tx.Bucket(bucketDevices).FillPercent = fillPercent
	tx.Bucket(bucketTokens).FillPercent = fillPercent
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// storeKey returns cfg.Key or the key file's key.
func storeKey(dir string, cfg Config, dataExists bool, dataFiles ...string) ([]byte, error) {
	if cfg.Key != nil {
		if len(cfg.Key) != KeySize {
			return nil, fmt.Errorf("key is %d bytes, want %d", len(cfg.Key), KeySize)
		}
		return slices.Clone(cfg.Key), nil
	}
	keyFile := cfg.KeyFile
	if keyFile == "" {
		keyFile = filepath.Join(dir, KeyFileName)
	}
	return loadKeyFile(keyFile, dataExists, dataFiles...)
}

// legacyFile is a decoded legacy data file and the digest of its bytes.
type legacyFile struct {
	state  *legacyState
	digest [sha256.Size]byte
}

func readLegacy(path string, key []byte) (*legacyFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, err := decodeLegacy(key, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", LegacyFileName, err)
	}
	return &legacyFile{state: st, digest: sha256.Sum256(data)}, nil
}

// setup creates the buckets and the key check of a new data file, copying
// legacy's records in the same transaction, or checks an existing file's
// format and key.
func (s *Store) setup(legacy *legacyFile) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if err := tx.ForEach(func([]byte, *bolt.Bucket) error { return errors.New("has buckets") }); err != nil {
				return fmt.Errorf("%s: %w: a bbolt file, but not a credsign store", DataFileName, ErrDamaged)
			}
			if err := s.create(tx, legacy); err != nil {
				return err
			}
			return s.checkTally(tx)
		}
		if err := checkFormat(meta.Get(metaFormat)); err != nil {
			return fmt.Errorf("%s: %w", DataFileName, err)
		}
		if !bytes.Equal(meta.Get(metaKeyCheck), s.c.keyCheck) {
			return fmt.Errorf("%s: %w: the key does not match the one the file was written with", DataFileName, ErrWrongKey)
		}
		if legacy != nil && !bytes.Equal(meta.Get(metaMigrated), legacy.digest[:]) {
			return fmt.Errorf("both %s and %s exist and %s was not migrated into %s: move one of them aside",
				DataFileName, LegacyFileName, LegacyFileName, DataFileName)
		}
		for _, b := range [][]byte{bucketDevices, bucketTokens, bucketTokenHashes} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%s: %w: bucket %s missing", DataFileName, ErrDamaged, b)
			}
		}
		// Files written before the service kept keys (or groups) here
		// lack the bucket.
		for _, b := range [][]byte{bucketKeys, bucketGroups} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketTokenOwners) == nil {
			if _, err := tx.CreateBucket(bucketTokenOwners); err != nil {
				return err
			}
			if err := s.fillTokenOwners(tx); err != nil {
				return err
			}
		}
		return s.checkTally(tx)
	})
}

func (s *Store) create(tx *bolt.Tx, legacy *legacyFile) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	for _, b := range [][]byte{bucketDevices, bucketTokens, bucketTokenHashes, bucketKeys, bucketGroups, bucketTokenOwners} {
		if _, err := tx.CreateBucket(b); err != nil {
			return err
		}
	}
	if err := meta.Put(metaFormat, []byte(formatVersion)); err != nil {
		return err
	}
	if err := meta.Put(metaKeyCheck, s.c.keyCheck); err != nil {
		return err
	}
	if legacy == nil {
		return nil
	}
	packBuckets(tx)
	for _, id := range slices.Sorted(maps.Keys(legacy.state.Devices)) {
		v, err := s.c.sealDevice(legacy.state.Devices[id])
		if err != nil {
			return fmt.Errorf("migrate device %q: %w", id, err)
		}
		if err := s.put(tx, bucketDevices, []byte(id), v); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(legacy.state.Tokens)) {
		st, err := s.sealToken(legacy.state.Tokens[id])
		if err == nil {
			err = s.putToken(tx, st)
		}
		if err != nil {
			return fmt.Errorf("migrate token %q: %w", id, err)
		}
	}
	return meta.Put(metaMigrated, legacy.digest[:])
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return errClosed
	}
	return err
}

// write runs fn in a shared read-write transaction (see committer) and
// returns its outcome once the transaction is durable.
func (s *Store) write(ctx context.Context, fn writeFn) error {
	op, err := s.submit(ctx, []writeFn{fn})
	if err != nil {
		return err
	}
	return op.wait()[0]
}

// submit hands fns (at most maxBatch) to the writer, unless ctx is done or
// the store closed.
func (s *Store) submit(ctx context.Context, fns []writeFn) (*writeOp, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	return s.w.submit(fns...), nil
}

// Ping reports whether the store is open and its data file still there.
func (s *Store) Ping(ctx context.Context) error {
	err := s.view(ctx, func(*bolt.Tx) error {
		_, err := os.Stat(s.path)
		return err
	})
	if err != nil && !errors.Is(err, secrets.ErrUnavailable) {
		err = fmt.Errorf("%w: %w", secrets.ErrUnavailable, err)
	}
	if err != nil {
		return fmt.Errorf("filestore: ping: %w", err)
	}
	return nil
}

// Close waits for the writes under way and closes the data file, which
// releases its lock. Later calls fail with an error wrapping
// secrets.ErrUnavailable. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.w.stop()
	return s.db.Close()
}
