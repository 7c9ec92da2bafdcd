package cloud

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The token family (jwt, aws): what its recipes share to build and sign a
// JWT with the deployment's TokenKey, and the checks of the topics they
// take as params.

// RegisteredClaims are the claims credsign sets itself.
var RegisteredClaims = []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti"}

// CheckTopicLevel checks a param that is one level of the device's topics.
func CheckTopicLevel(s string) error {
	return Forbid("+#/", "it is a level of the device's topics")(s)
}

// CheckTopicName checks a topic param a device publishes to.
func CheckTopicName(s string) error {
	return Forbid("+#", "a topic to publish to has no wildcards")(s)
}

// CheckTopicFilter checks a topic filter param a device subscribes to.
func CheckTopicFilter(s string) error {
	for i, level := range strings.Split(s, "/") {
		if strings.Contains(level, "#") && (level != "#" || i != strings.Count(s, "/")) {
			return fmt.Errorf("'#' must be a whole last level")
		}
		if strings.Contains(level, "+") && level != "+" {
			return fmt.Errorf("'+' must be a whole level")
		}
	}
	return nil
}

// Token is a JWT being built: the claims credsign sets and the extra ones.
type Token struct {
	Subject, Audience string
	Extra             map[string]any
	// HMACKey, when set, signs the token HS256 (RFC 7518 §3.2) instead of
	// with the server's token key; the header then names no kid.
	HMACKey []byte
}

// AlgHS256 is the JWS algorithm of tokens signed with a shared secret.
const AlgHS256 = "HS256"

// MinHS256Key is the shortest HS256 key: "a key of the same size as the
// hash output (for instance, 256 bits for HS256) or larger MUST be used"
// (RFC 7518 §3.2).
const MinHS256Key = 32

// SignToken returns the compact JWS of t's claims, issued now and expiring at exp.
func (in Input) SignToken(t Token, exp int64) (string, map[string]any, error) {
	jti, err := randomJTI(in.Rand)
	if err != nil {
		return "", nil, err
	}
	claims := make(map[string]any, len(t.Extra)+len(RegisteredClaims))
	for k, v := range t.Extra {
		claims[k] = v
	}
	iat := in.Now.Unix()
	claims["iss"], claims["sub"], claims["iat"], claims["nbf"], claims["exp"], claims["jti"] = in.Issuer, t.Subject, iat, iat, exp, jti
	if t.Audience != "" {
		claims["aud"] = t.Audience
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", nil, Invalid("params.claims", "cannot be encoded as JSON: %v", err)
	}
	alg, kid := in.Alg, in.TokenKey.ID
	if t.HMACKey != nil {
		alg, kid = AlgHS256, ""
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid,omitempty"`
		Typ string `json:"typ"`
	}{alg, kid, "JWT"})
	if err != nil {
		return "", nil, fmt.Errorf("signing: token header: %w", err)
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, enc.EncodedLen(len(header))+enc.EncodedLen(len(payload))+2+enc.EncodedLen(512))
	buf = enc.AppendEncode(buf, header)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	var sig []byte
	if t.HMACKey != nil {
		m := hmac.New(sha256.New, t.HMACKey)
		m.Write(buf)
		sig = m.Sum(nil)
	} else if sig, err = SignJWS(in.TokenKey.Signer, in.Alg, buf, in.Rand); err != nil {
		return "", nil, err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), claims, nil
}

func randomJTI(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("signing: read random jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Subject returns the device id the token is about: the Request's
// DeviceID, else the clientId param.
func (in Input) Subject(field string) (string, error) {
	id := in.DeviceID
	if id == "" {
		id = in.Params.Str("clientId", "")
	}
	if id == "" {
		return "", Invalid(field, "is required when no device id is given")
	}
	if strings.ContainsAny(id, "+#/") {
		return "", Invalid(field, "device id %q cannot name the device's topics: it has '+', '#' or '/'", Clip(id))
	}
	return id, nil
}

// TraceHS256 explains how an HS256 token was made.
func TraceHS256(in Input, claims map[string]any) {
	t := in.Trace
	t.Add("key", "the device's secret %s, the broker's shared HMAC secret (alg HS256); the server's token key is not used", Redacted(in.Secret))
	t.Add("header", `{"alg":"HS256","typ":"JWT"}`)
	b, _ := json.Marshal(claims)
	t.Add("content", "claims: %s", b)
	t.Add("algorithm", "HS256: HMAC-SHA256 over b64url(header) + \".\" + b64url(claims)")
}

// TraceToken explains how a token was made.
func TraceToken(in Input, claims map[string]any) {
	t := in.Trace
	t.Add("key", "the server's token key %q (%s); the device secret is not used for it", in.TokenKey.ID, in.Alg)
	t.Add("header", `{"alg":%q,"kid":%q,"typ":"JWT"}`, in.Alg, in.TokenKey.ID)
	b, _ := json.Marshal(claims)
	t.Add("content", "claims: %s", b)
	switch in.Alg {
	case AlgES256:
		t.Add("algorithm", "ES256: ECDSA P-256 over SHA-256 of b64url(header) + \".\" + b64url(claims); signature is r||s, 64 bytes")
	case AlgRS256:
		t.Add("algorithm", "RS256: RSASSA-PKCS1-v1_5 over SHA-256 of b64url(header) + \".\" + b64url(claims)")
	default:
		t.Add("algorithm", "EdDSA: Ed25519 over b64url(header) + \".\" + b64url(claims)")
	}
}
