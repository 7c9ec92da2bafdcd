package filestore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length in bytes of a store key (AES-256).
const KeySize = 32

// EnvKey names the environment variable KeyFromEnv reads: a store key as
// standard base64 (44 characters), e.g. the output of `head -c32
// /dev/urandom | base64`.
const EnvKey = "CREDSIGN_STORE_KEY"

// Errors Open and reads return (wrapped) when the data cannot be read.
var (
	// ErrWrongKey means the data was written with another key (or its key
	// check is damaged so that it no longer matches).
	ErrWrongKey = errors.New("wrong key or damaged file")
	// ErrDamaged means a data file or a record is truncated, not a store
	// file, or fails authentication under the right key (a record that was
	// changed, or moved to another key or bucket).
	ErrDamaged = errors.New("damaged file")
)

// ParseKey decodes a store key from its text form: standard base64 of
// KeySize bytes, surrounding white space ignored. Errors never quote the text.
func ParseKey(text []byte) ([]byte, error) {
	s := strings.TrimSpace(string(text))
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("key is not valid base64")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	return key, nil
}

// FormatKey returns the text form of key that ParseKey reads.
func FormatKey(key []byte) string {
	return base64.StdEncoding.EncodeToString(key)
}

// KeyFromEnv returns the key in the CREDSIGN_STORE_KEY environment variable,
// or nil and no error when the variable is unset or empty (Open then uses
// the key file).
func KeyFromEnv() ([]byte, error) {
	v := os.Getenv(EnvKey)
	if v == "" {
		return nil, nil
	}
	key, err := ParseKey([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("filestore: %s: %w", EnvKey, err)
	}
	return key, nil
}

// derive returns HMAC-SHA256(key, label): the subkeys of the store key (the
// record key, the token index key, the key check) are all derived so, each
// under its own label.
func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// loadKeyFile reads the key file, creating it with a new key when neither it
// nor any data file exists. dataFiles are the paths the key may not be.
func loadKeyFile(keyFile string, dataExists bool, dataFiles ...string) ([]byte, error) {
	absKey, err := filepath.Abs(keyFile)
	if err != nil {
		return nil, err
	}
	for _, f := range dataFiles {
		if absKey == f {
			return nil, errors.New("key file may not be the data file")
		}
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
		return nil, fmt.Errorf("key file %s is missing but the data exists: restore the key file or set %s", absKey, EnvKey)
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
