package testutil

import (
	"crypto/ecdsa"
	"testing"
)

// PrivateBytes is k's private scalar, 32 bytes for P-256 (ecdsa's Bytes).
func PrivateBytes(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
