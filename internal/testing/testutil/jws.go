package testutil

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// SignES256 builds a compact JWS by hand (not with go-jose, which
// verifies): header and claims as given, ES256 with k, the signature r||s.
// The tests of DPoP proofs sign with it what a device sends, well formed
// or not.
func SignES256(t testing.TB, k *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return SignES256Texts(t, k, string(h), string(c))
}

// SignES256Texts is SignES256 over header and claims texts as given, JSON
// or not (a malformed proof's).
func SignES256Texts(t testing.TB, k *ecdsa.PrivateKey, header, claims string) string {
	t.Helper()
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64.EncodeToString(sig)
}
