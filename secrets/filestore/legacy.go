package filestore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/credsign/credsign/secrets"
)

// The legacy data file, LegacyFileName, is what credsign wrote before the
// store moved to bbolt: a fixed header followed by one AES-256-GCM ciphertext
// of the JSON-encoded state, the whole header being the additional
// authenticated data. Open migrates it (see migrate); nothing writes it any
// more.
//
//	offset  size  field
//	0       8     magic "CREDSIGN"
//	8       2     format version, big endian (1)
//	10      8     key check: HMAC-SHA256(key, legacyKeyCheckLabel)[:8]
//	18      12    random nonce, new on every write
//	30      ...   ciphertext and 16-byte GCM tag
const (
	legacyMagic         = "CREDSIGN"
	legacyVersion       = 1
	legacyKeyCheckSize  = 8
	legacyNonceSize     = 12
	legacyHeaderSize    = len(legacyMagic) + 2 + legacyKeyCheckSize + legacyNonceSize
	legacyTagSize       = 16
	legacyKeyCheckLabel = "credsign filestore key check v1"
)

// legacyState is everything the legacy file holds.
type legacyState struct {
	Devices map[string]secrets.Device `json:"devices"`
	Tokens  map[string]secrets.Token  `json:"tokens"`
}

// check verifies the invariants a decoded legacy state must hold.
func (s *legacyState) check() error {
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

// decodeLegacy authenticates and decrypts a legacy data file.
func decodeLegacy(key []byte, data []byte) (*legacyState, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(data) < legacyHeaderSize+legacyTagSize || string(data[:len(legacyMagic)]) != legacyMagic {
		return nil, fmt.Errorf("%w: not a credsign store file or truncated (%d bytes)", ErrDamaged, len(data))
	}
	if v := binary.BigEndian.Uint16(data[len(legacyMagic):]); v != legacyVersion {
		return nil, fmt.Errorf("unsupported format version %d (this build reads %d)", v, legacyVersion)
	}
	check := data[len(legacyMagic)+2 : len(legacyMagic)+2+legacyKeyCheckSize]
	if !hmac.Equal(check, derive(key, legacyKeyCheckLabel)[:legacyKeyCheckSize]) {
		return nil, fmt.Errorf("%w: the key does not match the one the file was written with", ErrWrongKey)
	}
	header := data[:legacyHeaderSize]
	plain, err := aead.Open(nil, header[legacyHeaderSize-legacyNonceSize:], data[legacyHeaderSize:], header)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrDamaged)
	}
	defer clear(plain)
	st := &legacyState{}
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(st); err != nil {
		return nil, fmt.Errorf("%w: bad contents", ErrDamaged)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return st, nil
}
