// Package filestore is the embedded secrets.Store: one encrypted file in a
// data directory, the default backend when no Vault is configured.
//
// The data file (Dir/store.enc) holds every record as one AES-256-GCM
// ciphertext with a fresh random nonce per write; its header (format version
// and a key check) is authenticated too. The 32-byte key never goes into the
// data file: it is given in Config.Key (see KeyFromEnv) or kept in a key
// file, Dir/store.key by default, created with mode 0600 on first start.
//
// Every write replaces the whole file atomically and durably: the new
// contents go to a temporary file in the same directory, which is synced,
// renamed over the data file, and the directory synced. A crash therefore
// leaves either the old or the new file, never a half-written one, and a
// write that fails leaves the previous state both on disk and in memory.
//
// A Store is safe for concurrent use. On Linux and the BSDs an exclusive
// lock on Dir/store.lock keeps a second process from opening the same
// directory.
package filestore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/credsign/credsign/secrets"
)

// File names inside Config.Dir.
const (
	DataFileName = "store.enc"
	KeyFileName  = "store.key"
	LockFileName = "store.lock"
	tempPattern  = DataFileName + ".tmp-*"
)

// defaultLimit is the page size when ListOptions.Limit is 0.
const defaultLimit = 100

// renameFile is os.Rename; tests replace it to make a write fail.
var renameFile = os.Rename

// Config says where the store lives and which key opens it.
type Config struct {
	// Dir is the data directory, created (mode 0700) if missing.
	Dir string
	// Key is the 32-byte AES-256 key. When nil, the key is read from KeyFile.
	Key []byte
	// KeyFile holds the key as base64 text; default Dir/store.key. It is
	// created with a new random key (mode 0600) when neither it nor the data
	// file exists yet. It may not be the data file itself.
	KeyFile string
}

// Store is the embedded secrets.Store. Create it with Open.
type Store struct {
	dir  string
	path string
	key  []byte
	lock *os.File

	mu     sync.RWMutex
	st     *state
	closed bool
}

var _ secrets.Store = (*Store)(nil)

var errClosed = fmt.Errorf("store closed: %w", secrets.ErrUnavailable)

// Open opens (or creates) the store in cfg.Dir.
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
	s := &Store{dir: dir, path: filepath.Join(dir, DataFileName)}
	if s.lock, err = lockDir(filepath.Join(dir, LockFileName)); err != nil {
		return nil, fmt.Errorf("filestore: open %s: %w", dir, err)
	}
	if err := s.load(cfg); err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("filestore: open %s: %w", dir, err)
	}
	return s, nil
}

// load reads the key and the data file, and removes temporary files a crash
// may have left.
func (s *Store) load(cfg Config) error {
	_, err := os.Stat(s.path)
	dataExists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if cfg.Key != nil {
		if len(cfg.Key) != KeySize {
			return fmt.Errorf("key is %d bytes, want %d", len(cfg.Key), KeySize)
		}
		s.key = slices.Clone(cfg.Key)
	} else {
		keyFile := cfg.KeyFile
		if keyFile == "" {
			keyFile = filepath.Join(s.dir, KeyFileName)
		}
		if s.key, err = loadKeyFile(keyFile, s.path, dataExists); err != nil {
			return err
		}
	}
	stale, _ := filepath.Glob(filepath.Join(s.dir, tempPattern))
	for _, p := range stale {
		os.Remove(p)
	}
	if !dataExists {
		s.st = newState()
		return nil
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	if s.st, err = decode(s.key, data); err != nil {
		return fmt.Errorf("%s: %w", DataFileName, err)
	}
	return nil
}

// loadKeyFile reads the key file, creating it with a new key when neither it
// nor the data file exists.
func loadKeyFile(keyFile, dataFile string, dataExists bool) ([]byte, error) {
	absKey, err := filepath.Abs(keyFile)
	if err != nil {
		return nil, err
	}
	if absKey == dataFile {
		return nil, errors.New("key file may not be the data file")
	}
	text, err := os.ReadFile(absKey)
	switch {
	case err == nil:
		key, err := ParseKey(text)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", absKey, err)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("key file: %w", err)
	case dataExists:
		return nil, fmt.Errorf("key file %s is missing but %s exists: restore the key file or set %s", absKey, DataFileName, EnvKey)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	if err := createKeyFile(absKey, key); err != nil {
		return nil, fmt.Errorf("create key file %s: %w", absKey, err)
	}
	return key, nil
}

// createKeyFile writes key to path (mode 0600) without ever leaving a partial
// key file and without replacing one created meanwhile.
func createKeyFile(path string, key []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := writeTemp(dir, filepath.Base(path)+".tmp-*", []byte(FormatKey(key)+"\n"))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeTemp writes data to a new file (mode 0600) in dir, syncs and closes
// it, and returns its name. On error nothing is left behind.
func writeTemp(dir, pattern string, data []byte) (name string, err error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// persist writes st as the new data file, atomically and durably.
func (s *Store) persist(st *state) error {
	data, err := encode(s.key, st)
	if err != nil {
		return err
	}
	tmp, err := writeTemp(s.dir, tempPattern, data)
	if err != nil {
		return fmt.Errorf("write %s: %w", DataFileName, err)
	}
	if err := renameFile(tmp, s.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", DataFileName, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", DataFileName, err)
	}
	return nil
}

// update applies fn to a copy of the state, writes the copy to disk and only
// then makes it current. If fn or the write fails nothing changes.
func (s *Store) update(ctx context.Context, fn func(st *state) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	next := s.st.clone()
	if err := fn(next); err != nil {
		return err
	}
	if err := s.persist(next); err != nil {
		return err
	}
	s.st = next
	return nil
}

// view runs fn on the current state under the read lock.
func (s *Store) view(ctx context.Context, fn func(st *state) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	return fn(s.st)
}

// GetDevice returns the device or an error wrapping secrets.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	if !secrets.ValidID(id) {
		return secrets.Device{}, fmt.Errorf("filestore: get device %.64q: %w", id, secrets.ErrInvalid)
	}
	var d secrets.Device
	err := s.view(ctx, func(st *state) error {
		stored, ok := st.Devices[id]
		if !ok {
			return secrets.ErrNotFound
		}
		d = cloneDevice(stored)
		return nil
	})
	if err != nil {
		return secrets.Device{}, fmt.Errorf("filestore: get device %q: %w", id, err)
	}
	return d, nil
}

// PutDevice writes d under compare-and-set rules of secrets.DeviceStore.
func (s *Store) PutDevice(ctx context.Context, d secrets.Device, ifVersion int64) (secrets.Device, error) {
	if !secrets.ValidID(d.ID) {
		return secrets.Device{}, fmt.Errorf("filestore: put device %.64q: %w", d.ID, secrets.ErrInvalid)
	}
	var out secrets.Device
	err := s.update(ctx, func(st *state) error {
		old, exists := st.Devices[d.ID]
		switch {
		case ifVersion == 0 && exists:
			return fmt.Errorf("%w: device exists", secrets.ErrConflict)
		case ifVersion > 0 && !exists:
			return fmt.Errorf("%w: device does not exist", secrets.ErrConflict)
		case ifVersion > 0 && old.Version != ifVersion:
			return fmt.Errorf("%w: stored version is %d, not %d", secrets.ErrConflict, old.Version, ifVersion)
		}
		now := time.Now().UTC()
		rec := secrets.Device{
			ID: d.ID, Cloud: d.Cloud, Params: d.Params, Secret: d.Secret, Labels: d.Labels,
			Version: 1, CreatedAt: now, UpdatedAt: now,
		}
		if exists {
			rec.Version = old.Version + 1
			rec.CreatedAt = old.CreatedAt
		}
		rec, err := normalize(rec)
		if err != nil {
			return err
		}
		st.Devices[d.ID] = rec
		out = cloneDevice(rec)
		return nil
	})
	if err != nil {
		return secrets.Device{}, fmt.Errorf("filestore: put device %q: %w", d.ID, err)
	}
	return out, nil
}

// DeleteDevice removes the device, or returns an error wrapping
// secrets.ErrNotFound. The secret is gone from the data file once it returns.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	if !secrets.ValidID(id) {
		return fmt.Errorf("filestore: delete device %.64q: %w", id, secrets.ErrInvalid)
	}
	err := s.update(ctx, func(st *state) error {
		if _, ok := st.Devices[id]; !ok {
			return secrets.ErrNotFound
		}
		delete(st.Devices, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("filestore: delete device %q: %w", id, err)
	}
	return nil
}

// ListDevices returns a page of devices sorted by ID.
func (s *Store) ListDevices(ctx context.Context, opts secrets.ListOptions) (secrets.Page, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	var page secrets.Page
	err := s.view(ctx, func(st *state) error {
		ids := make([]string, 0, len(st.Devices))
		for id, d := range st.Devices {
			if id > opts.After && (opts.Cloud == "" || d.Cloud == opts.Cloud) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		if len(ids) > limit {
			ids = ids[:limit]
			page.Next = ids[limit-1]
		}
		page.Devices = make([]secrets.Device, len(ids))
		for i, id := range ids {
			page.Devices[i] = cloneDevice(st.Devices[id])
		}
		return nil
	})
	if err != nil {
		return secrets.Page{}, fmt.Errorf("filestore: list devices: %w", err)
	}
	return page, nil
}

// PutToken stores a new token record.
func (s *Store) PutToken(ctx context.Context, t secrets.Token) error {
	if !secrets.ValidID(t.ID) || !secrets.ValidHash(t.Hash) {
		return fmt.Errorf("filestore: put token %.64q: bad ID or hash: %w", t.ID, secrets.ErrInvalid)
	}
	err := s.update(ctx, func(st *state) error {
		if _, ok := st.Tokens[t.ID]; ok {
			return fmt.Errorf("%w: token ID exists", secrets.ErrConflict)
		}
		for _, o := range st.Tokens {
			if o.Hash == t.Hash {
				return fmt.Errorf("%w: token hash exists", secrets.ErrConflict)
			}
		}
		st.Tokens[t.ID] = cloneToken(t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("filestore: put token %q: %w", t.ID, err)
	}
	return nil
}

// TokenByHash finds a token by the hash of its text.
func (s *Store) TokenByHash(ctx context.Context, hash string) (secrets.Token, error) {
	if !secrets.ValidHash(hash) {
		return secrets.Token{}, fmt.Errorf("filestore: token by hash: %w", secrets.ErrInvalid)
	}
	var t secrets.Token
	err := s.view(ctx, func(st *state) error {
		for _, o := range st.Tokens {
			if o.Hash == hash {
				t = cloneToken(o)
				return nil
			}
		}
		return secrets.ErrNotFound
	})
	if err != nil {
		return secrets.Token{}, fmt.Errorf("filestore: token by hash: %w", err)
	}
	return t, nil
}

// GetToken finds a token by ID.
func (s *Store) GetToken(ctx context.Context, id string) (secrets.Token, error) {
	if !secrets.ValidID(id) {
		return secrets.Token{}, fmt.Errorf("filestore: get token %.64q: %w", id, secrets.ErrInvalid)
	}
	var t secrets.Token
	err := s.view(ctx, func(st *state) error {
		o, ok := st.Tokens[id]
		if !ok {
			return secrets.ErrNotFound
		}
		t = cloneToken(o)
		return nil
	})
	if err != nil {
		return secrets.Token{}, fmt.Errorf("filestore: get token %q: %w", id, err)
	}
	return t, nil
}

// RevokeToken marks the token revoked at the given time.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if !secrets.ValidID(id) {
		return fmt.Errorf("filestore: revoke token %.64q: %w", id, secrets.ErrInvalid)
	}
	err := s.update(ctx, func(st *state) error {
		t, ok := st.Tokens[id]
		if !ok {
			return secrets.ErrNotFound
		}
		if t.RevokedAt == nil {
			at := at.UTC()
			t.RevokedAt = &at
			st.Tokens[id] = t
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("filestore: revoke token %q: %w", id, err)
	}
	return nil
}

// Ping reports whether the store is open and its directory still there.
func (s *Store) Ping(ctx context.Context) error {
	err := s.view(ctx, func(*state) error {
		_, err := os.Stat(s.dir)
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

// Close releases the directory lock. Later calls fail with an error wrapping
// secrets.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	clear(s.key)
	s.st = nil
	return s.lock.Close()
}
