package filestore

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"testing"
)

// encodeLegacy writes st in the legacy format, as credsign did before bbolt,
// so that tests can build a directory to migrate.
func encodeLegacy(t testing.TB, key []byte, st *legacyState) []byte {
	t.Helper()
	aead, err := newGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, legacyHeaderSize, legacyHeaderSize+len(plain)+legacyTagSize)
	copy(out, legacyMagic)
	binary.BigEndian.PutUint16(out[len(legacyMagic):], legacyVersion)
	copy(out[len(legacyMagic)+2:], derive(key, legacyKeyCheckLabel)[:legacyKeyCheckSize])
	nonce := out[legacyHeaderSize-legacyNonceSize : legacyHeaderSize]
	rand.Read(nonce)
	return aead.Seal(out, nonce, plain, out[:legacyHeaderSize])
}
