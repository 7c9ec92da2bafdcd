package agent

// Device keys: the agent proves possession of its key on every call with
// a DPoP proof (RFC 9449 section 4, docs/devices.md) instead of sending a
// bearer token. The proof is built here by hand (a JWS is two base64url
// JSON texts and a signature), so the agent carries no JOSE library; the
// key is any crypto.Signer (a file key here, a TPM key elsewhere).

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/credsign/credsign/internal/es256"
)

var b64url = base64.RawURLEncoding

// Prover signs the DPoP proofs of one device key. It is safe for
// concurrent use.
type Prover struct {
	signer crypto.Signer
	alg    string
	// header is the proof's header, base64url, then ".".
	header string
	kid    string
	now    func() time.Time

	mu sync.Mutex
	// nonce is the server's latest DPoP-Nonce; useNonce says the server
	// asked for nonces (or refused the device's clock), so proofs carry it.
	nonce    string
	useNonce bool
}

// NewProver returns a Prover for signer, whose public key must be ECDSA
// P-256 (ES256) or Ed25519 (EdDSA).
func NewProver(signer crypto.Signer) (*Prover, error) {
	var jwk string
	p := &Prover{signer: signer, now: time.Now}
	switch pub := signer.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, errors.New("device key: an ECDSA key must be on curve P-256")
		}
		raw, err := pub.Bytes() // 0x04 || x || y
		if err != nil {
			return nil, fmt.Errorf("device key: %w", err)
		}
		x, y := raw[1:33], raw[33:]
		// Members in the order of RFC 7638, so jwk is the thumbprint input.
		jwk = `{"crv":"P-256","kty":"EC","x":"` + b64url.EncodeToString(x) + `","y":"` + b64url.EncodeToString(y) + `"}`
		p.alg = "ES256"
	case ed25519.PublicKey:
		jwk = `{"crv":"Ed25519","kty":"OKP","x":"` + b64url.EncodeToString(pub) + `"}`
		p.alg = "EdDSA"
	default:
		return nil, fmt.Errorf("device key: a %T key cannot sign proofs (want ECDSA P-256 or Ed25519)", pub)
	}
	sum := sha256.Sum256([]byte(jwk))
	p.kid = b64url.EncodeToString(sum[:])
	p.header = b64url.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"`+p.alg+`","jwk":`+jwk+`}`)) + "."
	return p, nil
}

// KeyID returns the key's ID: its RFC 7638 SHA-256 thumbprint, as the
// server names it.
func (p *Prover) KeyID() string { return p.kid }

// Proof returns a fresh proof for a request with method to url (without
// query or fragment).
func (p *Prover) Proof(method, url string) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("proof: %w", err)
	}
	claims := struct {
		JTI   string `json:"jti"`
		HTM   string `json:"htm"`
		HTU   string `json:"htu"`
		IAT   int64  `json:"iat"`
		Nonce string `json:"nonce,omitempty"`
	}{JTI: b64url.EncodeToString(jti), HTM: method, HTU: url, IAT: p.now().Unix()}
	p.mu.Lock()
	if p.useNonce {
		claims.Nonce = p.nonce
	}
	p.mu.Unlock()
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("proof: %w", err)
	}
	input := p.header + b64url.EncodeToString(c)
	sig, err := p.sign([]byte(input))
	if err != nil {
		return "", fmt.Errorf("proof: signing with the device key: %w", err)
	}
	return input + "." + b64url.EncodeToString(sig), nil
}

// sign signs input as the proof's alg: ES256 r||s of SHA-256 (a
// crypto.Signer gives ASN.1), EdDSA the message itself.
func (p *Prover) sign(input []byte) ([]byte, error) {
	if p.alg == "EdDSA" {
		return p.signer.Sign(rand.Reader, input, crypto.Hash(0))
	}
	sum := sha256.Sum256(input)
	der, err := p.signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	out, err := es256.FromASN1(der)
	if err != nil {
		return nil, fmt.Errorf("the key's signature: %w", err)
	}
	return out, nil
}

// observe learns the server nonce from a response, and reports whether a
// refusal is one that a proof with that nonce may cure (the server wants
// nonces, or refused the device's clock or an old nonce): then later
// proofs carry the nonce.
func (p *Prover) observe(resp *http.Response, reason string) (retry bool) {
	n := resp.Header.Get("DPoP-Nonce")
	p.mu.Lock()
	defer p.mu.Unlock()
	if n != "" {
		p.nonce = n
	}
	if resp.StatusCode != http.StatusUnauthorized || n == "" {
		return false
	}
	switch reason {
	case "use-nonce", "stale", "future", "bad-nonce":
		p.useNonce = true
		return true
	}
	return false
}

// editor returns a request editor that puts a fresh proof for the request
// in its DPoP header.
func (p *Prover) editor() func(context.Context, *http.Request) error {
	return func(_ context.Context, r *http.Request) error {
		u := *r.URL
		u.RawQuery, u.Fragment, u.User = "", "", nil
		proof, err := p.Proof(r.Method, u.String())
		if err != nil {
			return err
		}
		r.Header.Set("DPoP", proof)
		return nil
	}
}

// LoadKeyFile reads a device key from a PKCS#8 PEM file ("PRIVATE KEY").
func LoadKeyFile(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("key file %s: not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key file %s: not a PKCS#8 private key", path)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key file %s: the key cannot sign", path)
	}
	if _, err := NewProver(s); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return s, nil
}

// GenerateKeyFile creates a new ECDSA P-256 device key in path (PKCS#8
// PEM, mode 0600, never replacing a file) and returns it. fs.ErrExist
// when the file exists.
func GenerateKeyFile(path string) (crypto.Signer, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("key file %s: %w", path, fs.ErrExist)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a device key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding the device key: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	return k, nil
}

// LoadOrGenerateKeyFile loads the key in path, or creates one there when
// the file does not exist.
func LoadOrGenerateKeyFile(path string) (crypto.Signer, error) {
	s, err := LoadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		s, err = GenerateKeyFile(path)
		if errors.Is(err, fs.ErrExist) {
			return LoadKeyFile(path) // created meanwhile
		}
	}
	return s, err
}

// PublicJWK returns the public JWK of signer's key as JSON, for
// `credsign device-key add` or POST /v1/devices/{id}/keys.
func PublicJWK(signer crypto.Signer) ([]byte, error) {
	p, err := NewProver(signer)
	if err != nil {
		return nil, err
	}
	h, err := b64url.DecodeString(p.header[:len(p.header)-1])
	if err != nil {
		return nil, err
	}
	var hdr struct {
		JWK json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return nil, err
	}
	return hdr.JWK, nil
}

// proofReason is a refused proof's reason, for one line of explanation.
var proofReason = map[string]string{
	"missing":       "no DPoP proof was sent",
	"malformed":     "the proof is not well formed",
	"bad-signature": "the proof's signature does not verify",
	"stale":         "the proof is too old: the device's clock is behind (or send the server nonce)",
	"future":        "the proof is dated in the future: the device's clock is ahead",
	"replayed":      "the proof was used before",
	"wrong-url":     "the proof is for another URL: check --server (the URL the server is reached by)",
	"wrong-method":  "the proof is for another method",
	"unknown-key":   "the device key is not bound to this device (removed, another device's, or never added)",
	"bad-nonce":     "the proof's server nonce is not current",
	"use-nonce":     "the server requires its nonce in proofs",
	"key-required":  "this device must use its key, not a bearer token",
}

// Explain returns one line saying why a proof was refused, "" when reason
// is not a proof refusal.
func Explain(reason string) string {
	if e, ok := proofReason[reason]; ok {
		return "proof refused (" + reason + "): " + e
	}
	return ""
}
