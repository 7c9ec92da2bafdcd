package cloud

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/credsign/credsign/internal/es256"
)

// JWS algorithms a TokenKey signs with (RFC 7518, RFC 8037).
const (
	AlgES256 = "ES256" // ECDSA P-256 with SHA-256, the default
	AlgRS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256
	AlgEdDSA = "EdDSA" // Ed25519
)

// minRSABits is the shortest RSA key accepted, for tokens and for AWS's
// token-signing keys alike (AWS requires 2048 bits).
const minRSABits = 2048

// TokenKey is the key pair the token family (jwt, aws) signs its JWTs
// with: one per deployment, kept in the store and published as a JWKS so
// that brokers and authorizers can verify the tokens.
type TokenKey struct {
	// ID is the kid of the token header and of the key in the JWKS.
	ID string
	// Signer is the private key: an *ecdsa.PrivateKey on P-256 (ES256), an
	// *rsa.PrivateKey of at least 2048 bits (RS256), an ed25519.PrivateKey
	// (EdDSA), or any crypto.Signer whose public key is one of those (a KMS).
	Signer crypto.Signer
}

// Alg returns the JWS algorithm of the key.
func (k *TokenKey) Alg() (string, error) {
	if k == nil || k.Signer == nil {
		return "", errors.New("no key")
	}
	switch pub := k.Signer.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA keys must be on P-256 for ES256, not %s", pub.Curve.Params().Name)
		}
		return AlgES256, nil
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return "", fmt.Errorf("RSA keys must have at least %d bits, not %d", minRSABits, pub.N.BitLen())
		}
		return AlgRS256, nil
	case ed25519.PublicKey:
		return AlgEdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T (want ECDSA P-256, RSA or Ed25519)", k.Signer.Public())
}

func checkTokenKey(k *TokenKey) (string, error) {
	if k == nil || k.Signer == nil {
		return "", Invalid("tokenKey", "no token-signing key was given (the server's key pair; credsign sign --token-key FILE)")
	}
	if k.ID == "" {
		return "", Invalid("tokenKey", "the key has no id (kid)")
	}
	alg, err := k.Alg()
	if err != nil {
		return "", Invalid("tokenKey", "%s", err.Error())
	}
	return alg, nil
}

// GenerateTokenKey creates a key pair for alg (AlgES256, AlgRS256 with 2048
// bits, or AlgEdDSA; "" means AlgES256). Its ID is its RFC 7638 thumbprint.
func GenerateTokenKey(alg string) (*TokenKey, error) {
	var signer crypto.Signer
	var err error
	switch alg {
	case AlgES256, "":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		signer, err = rsa.GenerateKey(rand.Reader, minRSABits)
	case AlgEdDSA:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("signing: unknown token algorithm %q (want %s, %s or %s)", alg, AlgES256, AlgRS256, AlgEdDSA)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: generate %s key: %w", alg, err)
	}
	return NewTokenKey(signer)
}

// NewTokenKey wraps a private key, with its RFC 7638 thumbprint as ID.
func NewTokenKey(signer crypto.Signer) (*TokenKey, error) {
	k := &TokenKey{Signer: signer}
	if _, err := k.Alg(); err != nil {
		return nil, fmt.Errorf("signing: token key: %w", err)
	}
	k.ID = k.PublicJWK().Thumbprint()
	return k, nil
}

// ParseTokenKeyPEM reads a PKCS #8 private key ("PRIVATE KEY"; PKCS #1 "RSA
// PRIVATE KEY" and SEC 1 "EC PRIVATE KEY" too). The error never quotes the key.
func ParseTokenKeyPEM(b []byte) (*TokenKey, error) {
	key, blockType, err := parsePrivateKeyPEM(b, true)
	switch err {
	case errNoPEM:
		return nil, errors.New("signing: token key: no PEM block")
	case errPEMType:
		return nil, fmt.Errorf("signing: token key: PEM block %q is not a private key", blockType)
	case errPEMKey:
		return nil, errors.New("signing: token key: the PEM block does not hold a valid private key")
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing: token key: %T cannot sign", key)
	}
	return NewTokenKey(signer)
}

// MarshalPEM encodes the private key as PKCS #8 PEM, for the store.
func (k *TokenKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
	if err != nil {
		return nil, fmt.Errorf("signing: marshal token key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// JWK is a public key as RFC 7517 publishes it.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// PublicJWK returns the key's public half with kid, use "sig" and alg.
func (k *TokenKey) PublicJWK() JWK {
	alg, _ := k.Alg()
	j := JWK{Kid: k.ID, Use: "sig", Alg: alg}
	b64 := base64.RawURLEncoding.EncodeToString
	switch pub := k.Signer.Public().(type) {
	case *ecdsa.PublicKey:
		j.Kty, j.Crv = "EC", "P-256"
		if b, err := pub.Bytes(); err == nil { // 0x04 || X || Y
			j.X, j.Y = b64(b[1:33]), b64(b[33:65])
		}
	case *rsa.PublicKey:
		j.Kty = "RSA"
		j.N, j.E = b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(pub)
	}
	return j
}

// Thumbprint is the RFC 7638 JWK thumbprint: b64url(SHA-256 of the
// required members in lexicographic order, without spaces).
func (j JWK) Thumbprint() string {
	var canon string
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	switch j.Kty {
	case "EC":
		canon = `{"crv":` + q(j.Crv) + `,"kty":"EC","x":` + q(j.X) + `,"y":` + q(j.Y) + `}`
	case "RSA":
		canon = `{"e":` + q(j.E) + `,"kty":"RSA","n":` + q(j.N) + `}`
	case "OKP":
		canon = `{"crv":` + q(j.Crv) + `,"kty":"OKP","x":` + q(j.X) + `}`
	}
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// JWKS returns the JSON Web Key Set of the keys' public halves, as served at
// /.well-known/jwks.json: the current key and those kept for overlap.
func JWKS(keys ...*TokenKey) ([]byte, error) {
	set := struct {
		Keys []JWK `json:"keys"`
	}{Keys: make([]JWK, 0, len(keys))}
	for _, k := range keys {
		if _, err := k.Alg(); err != nil {
			return nil, fmt.Errorf("signing: JWKS: key %q: %w", k.ID, err)
		}
		set.Keys = append(set.Keys, k.PublicJWK())
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("signing: JWKS: %w", err)
	}
	return b, nil
}

// SignJWS returns the JWS signature of input (RFC 7515 §5.1) with the key
// for alg: ES256 as the 64-byte r‖s of RFC 7518 §3.4, not ASN.1.
func SignJWS(k crypto.Signer, alg string, input []byte, rnd io.Reader) ([]byte, error) {
	if alg == AlgEdDSA {
		sig, err := k.Sign(rnd, input, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("signing: EdDSA: %w", err)
		}
		return sig, nil
	}
	h := sha256.Sum256(input)
	switch key := k.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rnd, key, h[:])
		if err != nil {
			return nil, fmt.Errorf("signing: ES256: %w", err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	case *rsa.PrivateKey:
		sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, h[:])
		if err != nil {
			return nil, fmt.Errorf("signing: RS256: %w", err)
		}
		return sig, nil
	}
	// Any other crypto.Signer (a KMS or HSM key).
	sig, err := k.Sign(rnd, h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing: %s: %w", alg, err)
	}
	if alg != AlgES256 {
		return sig, nil
	}
	out, err := es256.FromASN1(sig)
	if err != nil {
		return nil, errors.New("signing: ES256: the signer returned no ASN.1 ECDSA signature")
	}
	return out, nil
}

// parseRSASecret reads a cloud secret that is a PEM RSA private key (AWS's
// token-signing key). Its errors never quote the key.
func parseRSASecret(b []byte) (*rsa.PrivateKey, error) {
	key, blockType, err := parsePrivateKeyPEM(b, false)
	switch err {
	case errNoPEM:
		return nil, Invalid("secret", "must be a PEM-encoded RSA private key (-----BEGIN PRIVATE KEY-----)")
	case errPEMType:
		return nil, Invalid("secret", "PEM block %q is not an RSA private key", Clip(blockType))
	case errPEMKey:
		return nil, Invalid("secret", "the PEM block does not hold a valid private key")
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, Invalid("secret", "must be an RSA private key (AWS token signing), not %T", key)
	}
	if n := rk.N.BitLen(); n < minRSABits {
		return nil, Invalid("secret", "the RSA key has %d bits; AWS requires at least %d", n, minRSABits)
	}
	return rk, nil
}

// The failures of parsePrivateKeyPEM, which each caller words for its own
// reader. None of them quotes the key.
var (
	errNoPEM   = errors.New("no PEM block")
	errPEMType = errors.New("the PEM block is of another type")
	errPEMKey  = errors.New("the PEM block does not hold a valid private key")
)

// parsePrivateKeyPEM reads the first PEM block of b as a private key: PKCS #8
// ("PRIVATE KEY"), PKCS #1 ("RSA PRIVATE KEY") and, when ec is set, SEC 1
// ("EC PRIVATE KEY"). It returns the block's type too, for the errPEMType
// message.
func parsePrivateKeyPEM(b []byte, ec bool) (key any, blockType string, err error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, "", errNoPEM
	}
	switch {
	case block.Type == "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case block.Type == "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case block.Type == "EC PRIVATE KEY" && ec:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, block.Type, errPEMType
	}
	if err != nil {
		return nil, block.Type, errPEMKey
	}
	return key, block.Type, nil
}
