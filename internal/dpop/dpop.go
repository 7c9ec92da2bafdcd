// Package dpop verifies the proofs of possession that devices send with
// their calls: DPoP proofs (RFC 9449 section 4), a JWS in compact form in
// the DPoP request header, used without an access token. The proof's
// embedded public key (jwk) is the device key; its RFC 7638 SHA-256
// thumbprint is the key's ID. Proofs are parsed and verified with go-jose
// v4; a header it accepted is cached, and a later proof with the same
// header text has only its signature checked (crypto/ecdsa, ed25519).
//
// A Verifier checks one proof against the request it came with (method
// and URL), the clock (iat within a window) or a server nonce (a stateless
// HMAC over a time step), and a per-replica cache of the jti values seen.
// docs/devices.md gives the wire format and a test vector.
package dpop

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Reason says why a proof was refused. The values are the problem
// document's `reason` member and the WWW-Authenticate error_description.
type Reason string

// Refusal reasons (docs/devices.md lists them).
const (
	Missing      Reason = "missing"
	Malformed    Reason = "malformed"
	BadSignature Reason = "bad-signature"
	Stale        Reason = "stale"
	Future       Reason = "future"
	Replayed     Reason = "replayed"
	WrongURL     Reason = "wrong-url"
	WrongMethod  Reason = "wrong-method"
	UnknownKey   Reason = "unknown-key"
	BadNonce     Reason = "bad-nonce"
	UseNonce     Reason = "use-nonce"
	KeyRequired  Reason = "key-required"
)

// Limits of a proof.
const (
	// MaxProofLen caps the DPoP header: a P-256 proof is about 600 bytes.
	MaxProofLen = 4096
	// MaxAge is how old (by its iat) a proof without a nonce may be.
	MaxAge = 60 * time.Second
	// MaxSkew is how far in the future its iat may be.
	MaxSkew = 5 * time.Second
	// MinJTI and MaxJTI bound the length of the jti claim.
	MinJTI, MaxJTI = 16, 64
	// ProofType is the typ header every proof carries.
	ProofType = "dpop+jwt"
)

// Algorithms are the signature algorithms accepted: ES256 (ECDSA P-256,
// required of every client) and EdDSA (Ed25519). Never "none" or HS*.
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// Error is a refused proof: the reason the device can log, and a detail
// that quotes nothing of the proof.
type Error struct {
	Reason Reason
	Detail string
}

// Error implements error.
func (e *Error) Error() string { return "DPoP proof refused (" + string(e.Reason) + "): " + e.Detail }

func refuse(r Reason, detail string) *Error { return &Error{Reason: r, Detail: detail} }

// ReasonOf returns the reason of a refused proof in err's chain, "" if none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Proof is a proof whose signature, method, URL and time verified.
type Proof struct {
	// Key is the proof's public key.
	Key jose.JSONWebKey
	// KeyID is the key's RFC 7638 SHA-256 thumbprint, base64url.
	KeyID string
	// JTI, IssuedAt and Nonce are the claims; NonceOK says a valid server
	// nonce stood in for the time window.
	JTI      string
	IssuedAt int64
	NonceOK  bool
}

// claims is the payload of a proof. iat is kept raw so that a string, a
// fraction or an exponent is refused rather than converted.
type claims struct {
	JTI   *string         `json:"jti"`
	HTM   *string         `json:"htm"`
	HTU   *string         `json:"htu"`
	IAT   json.RawMessage `json:"iat"`
	Nonce *string         `json:"nonce"`
}

// ParseKey reads a public JWK (ES256 P-256 or Ed25519) as a provisioner
// sends it, and returns it with its thumbprint. A key with private members,
// another curve or type, or a use/alg that contradicts signing is refused
// with a message that quotes nothing of it.
func ParseKey(raw []byte) (jose.JSONWebKey, string, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return jose.JSONWebKey{}, "", errors.New("not a JSON object")
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
		if _, ok := probe[private]; ok {
			return jose.JSONWebKey{}, "", errors.New("holds private key material (member " + private + "); send the public key only")
		}
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return jose.JSONWebKey{}, "", errors.New("not a well-formed JWK")
	}
	if err := checkKey(&k); err != nil {
		return jose.JSONWebKey{}, "", err
	}
	// Keep only the members that define the key.
	k = jose.JSONWebKey{Key: k.Key}
	kid, err := Thumbprint(k)
	if err != nil {
		return jose.JSONWebKey{}, "", err
	}
	return k, kid, nil
}

// checkKey accepts public P-256 ECDSA and Ed25519 keys only.
func checkKey(k *jose.JSONWebKey) error {
	switch pub := k.Key.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return errors.New("an EC key must be on curve P-256")
		}
	case ed25519.PublicKey:
	default:
		return errors.New("the key must be a public EC P-256 or OKP Ed25519 key")
	}
	if k.Use != "" && k.Use != "sig" {
		return errors.New(`the key's "use" must be "sig"`)
	}
	return nil
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of k, base64url
// without padding: a device key's ID.
func Thumbprint(k jose.JSONWebKey) (string, error) {
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// header is a proof header that go-jose parsed and whose signature it
// verified once: its key, the key's ID and alg.
type header struct {
	key jose.JSONWebKey
	kid string
	es  bool // ES256; else EdDSA
}

// verifySig checks sig over input with the header's key and alg, as
// go-jose does (ES256: r||s of the SHA-256, 32 bytes each).
func (h *header) verifySig(input string, sig []byte) bool {
	if !h.es {
		return ed25519.Verify(h.key.Key.(ed25519.PublicKey), []byte(input), sig)
	}
	if len(sig) != 64 {
		return false
	}
	sum := sha256.Sum256([]byte(input))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(h.key.Key.(*ecdsa.PublicKey), sum[:], r, s)
}

// parse checks a proof's form and signature, and returns its header and
// its claims; nothing about the request or the clock yet. A header seen
// before (a device signs all its proofs with one header) is taken from
// the verifier's cache of headers go-jose parsed and verified, and only
// the signature is checked again.
func (v *Verifier) parse(proof string) (*header, claims, error) {
	var c claims
	if proof == "" {
		return nil, c, refuse(Missing, "the request has no DPoP proof")
	}
	if len(proof) > MaxProofLen || strings.Count(proof, ".") != 2 || strings.ContainsAny(proof, "{} \t\r\n") {
		return nil, c, refuse(Malformed, "the DPoP proof is not a compact JWS")
	}
	first, last := strings.IndexByte(proof, '.'), strings.LastIndexByte(proof, '.')
	var payload []byte
	h := v.header(proof[:first])
	if h != nil {
		sig, err1 := base64.RawURLEncoding.DecodeString(proof[last+1:])
		p, err2 := base64.RawURLEncoding.DecodeString(proof[first+1 : last])
		if err2 != nil {
			return nil, c, refuse(Malformed, "the DPoP proof is not a compact JWS")
		}
		if err1 != nil || !h.verifySig(proof[:last], sig) {
			return nil, c, refuse(BadSignature, "the DPoP proof's signature does not verify with its jwk")
		}
		payload = p
	} else {
		var err error
		if h, payload, err = parseJOSE(proof); err != nil {
			return nil, c, err
		}
		v.rememberHeader(proof[:first], h)
	}
	return h, c, decodeClaims(payload, &c)
}

// parseJOSE parses and verifies a proof with go-jose.
func parseJOSE(proof string) (*header, []byte, error) {
	jws, err := jose.ParseSigned(proof, Algorithms)
	if err != nil {
		return nil, nil, refuse(Malformed, "the DPoP proof is not a JWS signed with ES256 or EdDSA")
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, refuse(Malformed, "the DPoP proof must have one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != ProofType {
		return nil, nil, refuse(Malformed, `the DPoP proof's typ header must be "dpop+jwt"`)
	}
	if _, ok := h.ExtraHeaders[jose.HeaderKey("crit")]; ok {
		return nil, nil, refuse(Malformed, "the DPoP proof must not have a crit header")
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() || !h.JSONWebKey.Valid() {
		return nil, nil, refuse(Malformed, "the DPoP proof's jwk header must be a public key")
	}
	key := jose.JSONWebKey{Key: h.JSONWebKey.Key}
	if err := checkKey(&key); err != nil {
		return nil, nil, refuse(Malformed, "the DPoP proof's jwk: "+err.Error())
	}
	if (h.Algorithm == string(jose.ES256)) != isEC(key) {
		return nil, nil, refuse(Malformed, "the DPoP proof's alg does not fit its key")
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, nil, refuse(BadSignature, "the DPoP proof's signature does not verify with its jwk")
	}
	kid, err := Thumbprint(key)
	if err != nil {
		return nil, nil, refuse(Malformed, "the DPoP proof's jwk has no thumbprint")
	}
	return &header{key: key, kid: kid, es: isEC(key)}, payload, nil
}

// decodeClaims decodes and checks the claims of a verified proof.
func decodeClaims(payload []byte, c *claims) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(c); err != nil || dec.More() {
		return refuse(Malformed, "the DPoP proof's claims are not a JSON object")
	}
	switch {
	case c.JTI == nil || len(*c.JTI) < MinJTI || len(*c.JTI) > MaxJTI:
		return refuse(Malformed, "the DPoP proof's jti must be a string of 16 to 64 characters")
	case c.HTM == nil || *c.HTM == "":
		return refuse(Malformed, "the DPoP proof has no htm")
	case c.HTU == nil || *c.HTU == "":
		return refuse(Malformed, "the DPoP proof has no htu")
	case c.IAT == nil:
		return refuse(Malformed, "the DPoP proof has no iat")
	}
	if _, ok := c.iat(); !ok {
		return refuse(Malformed, "the DPoP proof's iat must be an integer of seconds")
	}
	return nil
}

// iat returns the iat claim, an integer written without fraction,
// exponent or quotes.
func (c claims) iat() (int64, bool) {
	if len(c.IAT) == 0 || len(c.IAT) > 20 || (c.IAT[0] != '-' && (c.IAT[0] < '0' || c.IAT[0] > '9')) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(c.IAT), 10, 64)
	return n, err == nil
}

func isEC(k jose.JSONWebKey) bool {
	_, ok := k.Key.(*ecdsa.PublicKey)
	return ok
}
