package clouds

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// The JWTs credsign issues are checked here with go-jose, an independent
// JOSE implementation, against the JWKS that package cloud publishes.

var (
	tokenKeysMu sync.Mutex
	tokenKeys   = map[string]*TokenKey{}
	rsaPEMOnce  sync.Once
	rsaPEM      string
)

// testTokenKey returns a key for alg, generated once per test binary.
func testTokenKey(t testing.TB, alg string) *TokenKey {
	t.Helper()
	tokenKeysMu.Lock()
	defer tokenKeysMu.Unlock()
	if k := tokenKeys[alg]; k != nil {
		return k
	}
	k, err := GenerateTokenKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	tokenKeys[alg] = k
	return k
}

// testRSAPEM returns a PKCS #8 PEM RSA key, AWS's token-signing key.
func testRSAPEM(t testing.TB) string {
	rsaPEMOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		rsaPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	return rsaPEM
}

var allAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

// verifyWithJose checks token against jwks with go-jose and returns its claims.
func verifyWithJose(t *testing.T, token string, jwks []byte, now time.Time, issuer, audience string) map[string]any {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("go-jose cannot read the JWKS: %v", err)
	}
	tok, err := josejwt.ParseSigned(token, allAlgs)
	if err != nil {
		t.Fatalf("go-jose cannot parse the token: %v", err)
	}
	var std josejwt.Claims
	var all map[string]any
	if err := tok.Claims(set, &std, &all); err != nil {
		t.Fatalf("go-jose does not verify the token against the JWKS: %v", err)
	}
	exp := josejwt.Expected{Issuer: issuer, Time: now}
	if audience != "" {
		exp.AnyAudience = josejwt.Audience{audience}
	}
	if err := std.ValidateWithLeeway(exp, 0); err != nil {
		t.Fatalf("go-jose refuses the claims: %v", err)
	}
	return all
}

// TestJWTVerifiedByGoJose: every algorithm's token verifies with go-jose
// against the published JWKS, carries the documented claims, and is refused
// once expired or under another key.
func TestJWTVerifiedByGoJose(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, alg := range []string{AlgES256, AlgRS256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			key := testTokenKey(t, alg)
			other, err := GenerateTokenKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			c := mustSign(t, Request{Cloud: "jwt", DeviceID: "lamp-7",
				Params:   map[string]any{"host": "emqx.example", "audience": "emqx", "claims": map[string]any{"acl": []any{map[string]any{"permission": "allow", "action": "publish", "topic": "devices/lamp-7/#"}}}},
				TokenKey: key, Issuer: "https://credsign.example", Now: now, TTL: 10 * time.Minute})
			jwks, err := JWKS(other, key) // rotated: the old key still listed
			if err != nil {
				t.Fatal(err)
			}
			claims := verifyWithJose(t, c.Password, jwks, now.Add(time.Minute), "https://credsign.example", "emqx")
			if claims["sub"] != "lamp-7" || claims["exp"] != float64(1700000600) || claims["iat"] != float64(1700000000) || claims["nbf"] != float64(1700000000) {
				t.Errorf("claims = %v", claims)
			}
			if jti, _ := claims["jti"].(string); len(jti) != 22 {
				t.Errorf("jti %q: want 16 random bytes in b64url", jti)
			}
			if _, ok := claims["acl"].([]any); !ok {
				t.Errorf("extra claim acl not merged: %v", claims)
			}
			var hdr struct{ Alg, Kid, Typ string }
			h, _ := base64.RawURLEncoding.DecodeString(strings.Split(c.Password, ".")[0])
			if json.Unmarshal(h, &hdr) != nil || hdr.Alg != alg || hdr.Kid != key.ID || hdr.Typ != "JWT" {
				t.Errorf("header = %s", h)
			}
			if c.ClientID != "lamp-7" || c.Username != "lamp-7" || c.Host != "emqx.example" || c.Port != 8883 || !c.TLS ||
				!c.ExpiryEnforced || c.ExpiresAt.Unix() != 1700000600 || c.Topics.Telemetry != "devices/lamp-7/telemetry" || c.Topics.Commands != "devices/lamp-7/commands/#" {
				t.Errorf("credentials = %+v", c)
			}

			// Expired: go-jose refuses it.
			var set jose.JSONWebKeySet
			_ = json.Unmarshal(jwks, &set)
			tok, _ := josejwt.ParseSigned(c.Password, allAlgs)
			var std josejwt.Claims
			if err := tok.Claims(set, &std); err != nil {
				t.Fatal(err)
			}
			if err := std.ValidateWithLeeway(josejwt.Expected{Time: now.Add(11 * time.Minute)}, 0); err == nil {
				t.Error("go-jose accepts the token after exp")
			}
			// Another key's JWKS does not verify it.
			only, _ := JWKS(other)
			_ = json.Unmarshal(only, &set)
			if err := tok.Claims(set, &std); err == nil {
				t.Error("the token verifies under a key that did not sign it")
			}
		})
	}
}

// TestJWSPrimitiveVectors reproduces published JWS and JWK vectors.
func TestJWSPrimitiveVectors(t *testing.T) {
	// RFC 8037 Appendix A.1-A.4: Ed25519 key, its JWK thumbprint and the
	// JWS of "Example of Ed25519 signing".
	d, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	key, err := NewTokenKey(ed25519.NewKeyFromSeed(d))
	if err != nil {
		t.Fatal(err)
	}
	if j := key.PublicJWK(); j.X != "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" || j.Crv != "Ed25519" || j.Kty != "OKP" {
		t.Errorf("RFC 8037 A.2 public JWK = %+v", j)
	}
	if key.ID != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("RFC 8037 A.3 thumbprint = %s", key.ID)
	}
	sig, err := signJWS(key.Signer, AlgEdDSA, []byte("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(sig); got != "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg" {
		t.Errorf("RFC 8037 A.4 signature = %s", got)
	}
	// RFC 7515 Appendix A.2: RS256 JWS of the A.1 claims with the A.2 key
	// (N = P·Q, e = 65537), reproduced byte for byte.
	b := func(s string) *big.Int {
		v, _ := base64.RawURLEncoding.DecodeString(s)
		return new(big.Int).SetBytes(v)
	}
	p := b("4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc")
	q := b("uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc")
	rk := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537},
		D:         b("Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ"),
		Primes:    []*big.Int{p, q},
	}
	rk.Precompute()
	rsig, err := signJWS(rk, AlgRS256, []byte("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(rsig); got != "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw" {
		t.Errorf("RFC 7515 A.2 signature = %s", got)
	}
	// RFC 7638 §3.1: thumbprint of the RSA key of RFC 7517 Appendix A.1.
	rsaJWK := JWK{Kty: "RSA", E: "AQAB", N: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
	if got := rsaJWK.Thumbprint(); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("RFC 7638 thumbprint = %s", got)
	}
}

// TestTokenKeyPEMRoundTrip: a stored key reads back with the same id and
// signs tokens that verify; foreign or weak keys are refused.
func TestTokenKeyPEMRoundTrip(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgRS256, AlgEdDSA} {
		k := testTokenKey(t, alg)
		b, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseTokenKeyPEM(b)
		if err != nil || back.ID != k.ID {
			t.Fatalf("%s: ParseTokenKeyPEM = %v, %v", alg, back, err)
		}
		if a, _ := back.Alg(); a != alg {
			t.Errorf("alg %s, want %s", a, alg)
		}
	}
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewTokenKey(weak); err == nil {
		t.Error("a 1024-bit RSA key was accepted")
	}
	if _, err := ParseTokenKeyPEM([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil || strings.Contains(err.Error(), "AAAA") {
		t.Errorf("garbage key: %v", err)
	}
}

// kmsSigner hides the key type, as a KMS- or HSM-backed crypto.Signer does,
// so that the generic path (ASN.1 ECDSA to r||s) is exercised.
type kmsSigner struct{ crypto.Signer }

func TestOpaqueSignerES256(t *testing.T) {
	k := testTokenKey(t, AlgES256)
	opaque := &TokenKey{ID: k.ID, Signer: kmsSigner{k.Signer}}
	now := time.Unix(1700000000, 0)
	c := mustSign(t, Request{Cloud: "jwt", DeviceID: "d1", Params: map[string]any{"host": "h"}, TokenKey: opaque, Issuer: "iss", Now: now})
	jwks, _ := JWKS(k)
	verifyWithJose(t, c.Password, jwks, now, "iss", "")
}

// TestAWSCustomAuthorizer: the username carries the authorizer name, the
// token and its RSA-SHA256 signature by the device's token-signing key, as
// AWS's custom-authentication page lays out; the token verifies with go-jose.
func TestAWSCustomAuthorizer(t *testing.T) {
	pemKey := testRSAPEM(t)
	block, _ := pem.Decode([]byte(pemKey))
	priv, _ := x509.ParsePKCS8PrivateKey(block.Bytes)
	pub := &priv.(*rsa.PrivateKey).PublicKey
	key := testTokenKey(t, AlgES256)
	now := time.Unix(1700000000, 0)
	c := mustSign(t, Request{Cloud: "aws", DeviceID: "lamp-7",
		Params: map[string]any{"endpoint": "abc123-ats.iot.eu-west-1.amazonaws.com", "authorizerName": "credsign-authorizer", "tokenKeyName": "x-token"},
		Secret: pemKey, TokenKey: key, Issuer: "https://credsign.example", Now: now, TTL: time.Hour})
	name, query, ok := strings.Cut(c.Username, "?")
	if !ok || name != "lamp-7" {
		t.Fatalf("username %q: want lamp-7?…", c.Username)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("x-amz-customauthorizer-name") != "credsign-authorizer" || len(q) != 3 {
		t.Errorf("query = %v", q)
	}
	tok := q.Get("x-token")
	sig, err := base64.StdEncoding.DecodeString(q.Get("x-amz-customauthorizer-signature"))
	if err != nil {
		t.Fatalf("signature is not base64: %v", err)
	}
	h := sha256.Sum256([]byte(tok))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
		t.Errorf("the authorizer's public key does not verify the token signature: %v", err)
	}
	jwks, _ := JWKS(key)
	claims := verifyWithJose(t, tok, jwks, now, "https://credsign.example", "abc123-ats.iot.eu-west-1.amazonaws.com")
	if claims["sub"] != "lamp-7" {
		t.Errorf("sub = %v", claims["sub"])
	}
	if c.ClientID != "lamp-7" || c.Password != "" || c.Host != "abc123-ats.iot.eu-west-1.amazonaws.com" || c.Port != 443 || c.ALPN != "mqtt" || !c.TLS ||
		!c.ExpiryEnforced || c.ExpiresAt.Unix() != 1700003600 || c.Topics.Telemetry != "dt/credsign/lamp-7/telemetry" || c.Topics.ShadowDelta != "$aws/things/lamp-7/shadow/update/delta" {
		t.Errorf("credentials = %+v", c)
	}
	// Classic mistake: a signature over the URL-encoded token (or with SHA-1)
	// differs; the token has no character that encoding would change, so the
	// mistake shows on the signature alone when the token key name needs none.
	wrong := sha256.Sum256([]byte(url.QueryEscape(tok + "=")))
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, wrong[:], sig) == nil {
		t.Error("the signature also verifies over another string")
	}
	c8883 := mustSign(t, Request{Cloud: "aws", DeviceID: "lamp-7", Params: map[string]any{"endpoint": "e.example", "authorizerName": "a", "port": 8883},
		Secret: pemKey, TokenKey: key, Issuer: "i", Now: now})
	if c8883.ALPN != "" || c8883.Port != 8883 {
		t.Errorf("port 8883 needs no ALPN: %+v", c8883)
	}
}

// TestTokenValidation: the token family refuses what it cannot sign with.
func TestTokenValidation(t *testing.T) {
	now := time.Unix(1700000000, 0)
	key := testTokenKey(t, AlgES256)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakDER, _ := x509.MarshalPKCS8PrivateKey(weak)
	weakPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: weakDER}))
	aws := func(kv ...any) map[string]any { return with("aws", kv...) }
	tests := []struct {
		name  string
		req   Request
		field string
	}{
		{"no token key", Request{Cloud: "jwt", Params: validParams("jwt"), Issuer: "i"}, "tokenKey"},
		{"key without id", Request{Cloud: "jwt", Params: validParams("jwt"), TokenKey: &TokenKey{Signer: key.Signer}, Issuer: "i"}, "tokenKey"},
		{"no issuer", Request{Cloud: "jwt", Params: validParams("jwt"), TokenKey: key}, "issuer"},
		{"no host", Request{Cloud: "jwt", Params: with("jwt", "host", nil), TokenKey: key, Issuer: "i"}, "params.host"},
		{"no device id", Request{Cloud: "jwt", Params: with("jwt", "clientId", nil), TokenKey: key, Issuer: "i"}, "params.clientId"},
		{"registered claim", Request{Cloud: "jwt", Params: with("jwt", "claims", map[string]any{"exp": 1}), TokenKey: key, Issuer: "i"}, "params.claims"},
		{"claims not an object", Request{Cloud: "jwt", Params: with("jwt", "claims", "[1]"), TokenKey: key, Issuer: "i"}, "params.claims"},
		{"clientId with wildcard", Request{Cloud: "jwt", Params: with("jwt", "clientId", "a+b"), TokenKey: key, Issuer: "i"}, "params.clientId"},
		{"commands filter with bad #", Request{Cloud: "jwt", Params: with("jwt", "commandsTopic", "a/#/b"), TokenKey: key, Issuer: "i"}, "params.commandsTopic"},
		{"aws secret not PEM", Request{Cloud: "aws", Params: validParams("aws"), Secret: "secret", TokenKey: key, Issuer: "i"}, "secret"},
		{"aws weak RSA key", Request{Cloud: "aws", Params: validParams("aws"), Secret: weakPEM, TokenKey: key, Issuer: "i"}, "secret"},
		{"aws no authorizer", Request{Cloud: "aws", Params: aws("authorizerName", nil), Secret: testRSAPEM(t), TokenKey: key, Issuer: "i"}, "params.authorizerName"},
		{"aws authorizer with &", Request{Cloud: "aws", Params: aws("authorizerName", "a&b"), Secret: testRSAPEM(t), TokenKey: key, Issuer: "i"}, "params.authorizerName"},
		{"aws clientId with ?", Request{Cloud: "aws", Params: aws("clientId", "a?b"), Secret: testRSAPEM(t), TokenKey: key, Issuer: "i"}, "params.clientId"},
		{"failing randomness", Request{Cloud: "jwt", Params: validParams("jwt"), TokenKey: key, Issuer: "i", Rand: bytes.NewReader(nil)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.Now = now
			_, err := Sign(req)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.field == "" {
				return
			}
			var ie *InvalidError
			if !errorsAs(err, &ie) || ie.Field != tt.field {
				t.Errorf("err = %v, want field %s", err, tt.field)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----\nMII") {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
}

func errorsAs(err error, target **InvalidError) bool { return errors.As(err, target) }

// TestValidateWithoutTokenKey: a jwt or aws device can be checked at
// registration, before the server's key is at hand; bad input is still refused.
func TestValidateWithoutTokenKey(t *testing.T) {
	now := time.Unix(1700000000, 0)
	if err := Validate(Request{Cloud: "jwt", Params: validParams("jwt"), Now: now}); err != nil {
		t.Errorf("jwt: %v", err)
	}
	if err := Validate(Request{Cloud: "aws", Params: validParams("aws"), Secret: testRSAPEM(t), Now: now}); err != nil {
		t.Errorf("aws: %v", err)
	}
	var ie *InvalidError
	if err := Validate(Request{Cloud: "aws", Params: validParams("aws"), Secret: "not a key", Now: now}); !errorsAs(err, &ie) || ie.Field != "secret" {
		t.Errorf("aws bad secret: %v", err)
	}
	if err := Validate(Request{Cloud: "jwt", Params: with("jwt", "claims", map[string]any{"sub": "x"}), Now: now}); !errorsAs(err, &ie) || ie.Field != "params.claims" {
		t.Errorf("jwt reserved claim: %v", err)
	}
	if err := Validate(Request{Cloud: "tuya", Params: validParams("tuya"), Now: now}); !errorsAs(err, &ie) || ie.Field != "secret" {
		t.Errorf("tuya without secret: %v", err)
	}
}

// TestAWSUsernameAsPythonSDK builds the username with a port of
// aws/aws-iot-device-sdk-python-v2 awsiot/mqtt_connection_builder.py
// (_with_custom_authorizer and _add_to_username_parameter: the name and
// the token appended as they are, the signature through
// urllib.parse.quote, which keeps '/') and compares it byte for byte.
func TestAWSUsernameAsPythonSDK(t *testing.T) {
	pemKey := testRSAPEM(t)
	key := testTokenKey(t, AlgES256)
	// pyQuote is urllib.parse.quote(s) with its default safe="/".
	pyQuote := func(s string) string {
		var b strings.Builder
		for _, r := range []byte(s) {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.IndexByte("_.-~/", r) >= 0 {
				b.WriteByte(r)
			} else {
				fmt.Fprintf(&b, "%%%02X", r)
			}
		}
		return b.String()
	}
	addToUsername := func(in, value, pretext string) string {
		if strings.Contains(in, "?") {
			in += "&"
		} else {
			in += "?"
		}
		if strings.Contains(value, pretext) {
			return in + value
		}
		return in + pretext + value
	}
	slashes := 0
	for i := 0; i < 8; i++ {
		c := mustSign(t, Request{Cloud: "aws", DeviceID: fmt.Sprintf("lamp-%d", i),
			Params: map[string]any{"endpoint": "abc123-ats.iot.eu-west-1.amazonaws.com", "authorizerName": "credsign-authorizer", "tokenKeyName": "x-token"},
			Secret: pemKey, TokenKey: key, Issuer: "https://credsign.example", Now: time.Unix(1700000000, 0)})
		q, err := url.ParseQuery(strings.SplitN(c.Username, "?", 2)[1])
		if err != nil {
			t.Fatal(err)
		}
		tok, sig := q.Get("x-token"), q.Get("x-amz-customauthorizer-signature")
		want := c.ClientID
		want = addToUsername(want, "credsign-authorizer", "x-amz-customauthorizer-name=")
		enc := sig
		if !strings.Contains(enc, "%") {
			enc = pyQuote(enc)
		}
		want = addToUsername(want, enc, "x-amz-customauthorizer-signature=")
		want = addToUsername(want, tok, "x-token=")
		if c.Username != want {
			t.Fatalf("username\n%s\nwant (Python SDK)\n%s", c.Username, want)
		}
		slashes += strings.Count(sig, "/")
	}
	if slashes == 0 {
		t.Fatal("no signature had a '/': the escaping of '/' went untested")
	}
}

// TestJWTForMosquittoGoAuth: with tokenIn=username and alg=HS256 the
// username is a JWT that a port of iegomez/mosquitto-go-auth's
// backends/jwt.go getJWTClaims and getUsernameForToken accepts (golang-jwt
// v3: the key function returns []byte(jwt_secret), so only HMAC methods
// verify; MapClaims.Valid checks exp, iat, nbf; the user is the sub
// claim), and the password is empty. The default ES256 token fails that
// check, as it fails mosquitto-go-auth's local and js modes.
func TestJWTForMosquittoGoAuth(t *testing.T) {
	const secret = "go-auth-jwt-secret-of-32-bytes!!"
	now := time.Unix(1765000000, 0)
	key := testTokenKey(t, AlgES256)
	goAuth := func(token string, at time.Time) (string, error) {
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			return "", fmt.Errorf("token contains an invalid number of segments")
		}
		var header struct{ Alg string }
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		if json.Unmarshal(hb, &header) != nil || header.Alg != "HS256" {
			return "", fmt.Errorf("key is of invalid type for %q", header.Alg)
		}
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(parts[0] + "." + parts[1]))
		if sig, _ := base64.RawURLEncoding.DecodeString(parts[2]); !hmac.Equal(sig, m.Sum(nil)) {
			return "", fmt.Errorf("signature is invalid")
		}
		var claims map[string]any
		cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if err := json.Unmarshal(cb, &claims); err != nil {
			return "", err
		}
		if exp, ok := claims["exp"].(float64); ok && at.Unix() > int64(exp) {
			return "", fmt.Errorf("token is expired")
		}
		if iat, ok := claims["iat"].(float64); ok && at.Unix() < int64(iat) {
			return "", fmt.Errorf("token used before issued")
		}
		if nbf, ok := claims["nbf"].(float64); ok && at.Unix() < int64(nbf) {
			return "", fmt.Errorf("token is not valid yet")
		}
		user, _ := claims["sub"].(string)
		return user, nil
	}
	c := mustSign(t, Request{Cloud: "jwt", DeviceID: "lamp-7", Params: map[string]any{"host": "h", "tokenIn": "username", "alg": "HS256"},
		Secret: secret, TokenKey: key, Issuer: "https://credsign.example", Now: now, TTL: time.Hour})
	if c.Password != "" || c.ClientID != "lamp-7" || !c.ExpiryEnforced || c.ExpiresAt.Unix() != now.Add(time.Hour).Unix() {
		t.Errorf("credentials = %+v", c)
	}
	if user, err := goAuth(c.Username, now); err != nil || user != "lamp-7" {
		t.Errorf("mosquitto-go-auth local mode: user %q, err %v; want lamp-7", user, err)
	}
	if _, err := goAuth(c.Username, now.Add(time.Hour+time.Second)); err == nil {
		t.Error("mosquitto-go-auth accepted the token after exp")
	}
	if hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(c.Username, ".")[0]); string(hb) != `{"alg":"HS256","typ":"JWT"}` {
		t.Errorf("header %s", hb)
	}
	es := mustSign(t, Request{Cloud: "jwt", DeviceID: "lamp-7", Params: map[string]any{"host": "h", "tokenIn": "username"},
		TokenKey: key, Issuer: "https://credsign.example", Now: now})
	if _, err := goAuth(es.Username, now); err == nil {
		t.Error("an ES256 token passed mosquitto-go-auth's HMAC-only check")
	}
	for _, tt := range []struct {
		params map[string]any
		secret string
		field  string
	}{
		{map[string]any{"host": "h", "alg": "HS256"}, "short", "secret"},
		{map[string]any{"host": "h", "alg": "HS256"}, "", "secret"},
		{map[string]any{"host": "h", "tokenIn": "username", "username": "u"}, "", "params.username"},
		{map[string]any{"host": "h", "tokenIn": "clientId"}, "", "params.tokenIn"},
		{map[string]any{"host": "h", "alg": "HS512"}, secret, "params.alg"},
	} {
		_, err := Sign(Request{Cloud: "jwt", DeviceID: "d", Params: tt.params, Secret: tt.secret, TokenKey: key, Issuer: "i", Now: now})
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != tt.field || (tt.secret != "" && strings.Contains(err.Error(), tt.secret)) {
			t.Errorf("%v: err = %v, want invalid %s without the secret", tt.params, err, tt.field)
		}
	}
}
