package filestore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/credsign/credsign/secrets"
)

// KeySize is the length in bytes of a store key (AES-256).
const KeySize = 32

// EnvKey names the environment variable KeyFromEnv reads: a store key as
// standard base64 (44 characters), e.g. the output of `head -c32
// /dev/urandom | base64`.
const EnvKey = "CREDSIGN_STORE_KEY"

// Errors Open returns (wrapped) when the data file cannot be read.
var (
	// ErrWrongKey means the data file was written with another key (or its
	// header is damaged so that the key check no longer matches).
	ErrWrongKey = errors.New("wrong key or damaged file")
	// ErrDamaged means the data file is truncated, not a store file, or fails
	// authentication under the right key.
	ErrDamaged = errors.New("damaged file")
)

// The data file is a fixed header followed by one AES-256-GCM ciphertext of
// the JSON-encoded state. The whole header is the additional authenticated
// data, so its version and key check cannot be changed unnoticed.
//
//	offset  size  field
//	0       8     magic "CREDSIGN"
//	8       2     format version, big endian (1)
//	10      8     key check: HMAC-SHA256(key, keyCheckLabel)[:8]
//	18      12    random nonce, new on every write
//	30      ...   ciphertext and 16-byte GCM tag
const (
	magic         = "CREDSIGN"
	formatVersion = 1
	keyCheckSize  = 8
	nonceSize     = 12
	headerSize    = len(magic) + 2 + keyCheckSize + nonceSize
	tagSize       = 16
	keyCheckLabel = "credsign filestore key check v1"
)

// state is everything the store keeps, as it is encrypted into the file.
type state struct {
	Devices map[string]secrets.Device `json:"devices"`
	Tokens  map[string]secrets.Token  `json:"tokens"`
}

func newState() *state {
	return &state{Devices: map[string]secrets.Device{}, Tokens: map[string]secrets.Token{}}
}

// clone returns a copy whose maps may be changed without touching s. The
// records themselves are shared: the store never modifies one in place.
func (s *state) clone() *state {
	c := &state{
		Devices: make(map[string]secrets.Device, len(s.Devices)+1),
		Tokens:  make(map[string]secrets.Token, len(s.Tokens)+1),
	}
	for k, v := range s.Devices {
		c.Devices[k] = v
	}
	for k, v := range s.Tokens {
		c.Tokens[k] = v
	}
	return c
}

// check verifies the invariants a decoded state must hold.
func (s *state) check() error {
	hashes := make(map[string]bool, len(s.Tokens))
	for id, d := range s.Devices {
		if !secrets.ValidID(id) || d.ID != id {
			return fmt.Errorf("bad device record %.64q", id)
		}
	}
	for id, t := range s.Tokens {
		if !secrets.ValidID(id) || t.ID != id || !secrets.ValidHash(t.Hash) || hashes[t.Hash] {
			return fmt.Errorf("bad token record %.64q", id)
		}
		hashes[t.Hash] = true
	}
	return nil
}

func keyCheck(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(keyCheckLabel))
	return m.Sum(nil)[:keyCheckSize]
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// encode encrypts st under key with a fresh random nonce.
func encode(key []byte, st *state) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	out := make([]byte, headerSize, headerSize+len(plain)+tagSize)
	copy(out, magic)
	binary.BigEndian.PutUint16(out[len(magic):], formatVersion)
	copy(out[len(magic)+2:], keyCheck(key))
	nonce := out[headerSize-nonceSize : headerSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	out = aead.Seal(out, nonce, plain, out[:headerSize])
	clear(plain)
	return out, nil
}

// decode authenticates and decrypts a data file written by encode.
func decode(key []byte, data []byte) (*state, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(data) < headerSize+tagSize || string(data[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not a credsign store file or truncated (%d bytes)", ErrDamaged, len(data))
	}
	if v := binary.BigEndian.Uint16(data[len(magic):]); v != formatVersion {
		return nil, fmt.Errorf("unsupported format version %d (this build reads %d)", v, formatVersion)
	}
	if !hmac.Equal(data[len(magic)+2:len(magic)+2+keyCheckSize], keyCheck(key)) {
		return nil, fmt.Errorf("%w: the key does not match the one the file was written with", ErrWrongKey)
	}
	header := data[:headerSize]
	plain, err := aead.Open(nil, header[headerSize-nonceSize:], data[headerSize:], header)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrDamaged)
	}
	defer clear(plain)
	st := newState()
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(st); err != nil {
		return nil, fmt.Errorf("%w: bad contents", ErrDamaged)
	}
	if st.Devices == nil {
		st.Devices = map[string]secrets.Device{}
	}
	if st.Tokens == nil {
		st.Tokens = map[string]secrets.Token{}
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return st, nil
}

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
