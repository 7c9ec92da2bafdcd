package testutil

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/credsign/credsign/internal/es256"
)

// ES256Signer puts any crypto.Signer of a P-256 key (a key in a TPM, a
// software key) behind go-jose's OpaqueSigner for ES256, the way a
// device's proof signer does: the signer's ASN.1 signature becomes JWS's
// r‖s.
type ES256Signer struct{ Signer crypto.Signer }

// Public is the signer's public key as an ES256 JWK.
func (s ES256Signer) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: s.Signer.Public(), Algorithm: string(jose.ES256)}
}

// Algs is ES256 only.
func (s ES256Signer) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{jose.ES256} }

// SignPayload signs the SHA-256 of payload and returns r‖s.
func (s ES256Signer) SignPayload(payload []byte, _ jose.SignatureAlgorithm) ([]byte, error) {
	h := sha256.Sum256(payload)
	der, err := s.Signer.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return es256.FromASN1(der)
}

// Proof signs claims, a JSON text, as a DPoP proof with go-jose (typ
// dpop+jwt, the public jwk in the header) and returns it compact.
func (s ES256Signer) Proof(t testing.TB, claims string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(claims))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
