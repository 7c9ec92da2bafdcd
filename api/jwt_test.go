package api

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// TestJWTIssuerAndRotation: credsign signs jwt-cloud passwords with the
// deployment's key, publishes it at /.well-known/jwks.json, and rotates it
// with overlap. An independent library (go-jose) verifies each token
// against the JWKS the server serves, before and after a rotation.
func TestJWTIssuerAndRotation(t *testing.T) {
	const issuer = "https://credsign.test"
	e := newEnv(t, func(c *envConfig) { c.Issuer = issuer })
	doc := map[string]any{"cloud": "jwt", "params": map[string]any{"host": "broker.test", "audience": "emqx"}}
	mustStatus(t, e.do(http.MethodPut, "/v1/devices/j1", testAdmin, doc), 201, "put jwt device")

	jwks := func() jose.JSONWebKeySet {
		t.Helper()
		r := e.do(http.MethodGet, "/.well-known/jwks.json", "", nil)
		mustStatus(t, r, 200, "jwks")
		if cc := r.header.Get("Cache-Control"); cc != "public, max-age=300" {
			t.Errorf("JWKS Cache-Control %q", cc)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(r.body, &set); err != nil {
			t.Fatalf("JWKS: %v", err)
		}
		return set
	}
	issue := func() string {
		t.Helper()
		var c struct{ Password string }
		r := e.do(http.MethodPost, "/v1/devices/j1/credentials", testAdmin, map[string]any{"ttlSeconds": 60})
		mustStatus(t, r, 200, "issue")
		r.json(t, &c)
		return c.Password
	}
	verify := func(token string, set jose.JSONWebKeySet, at time.Time) error {
		tok, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
		if err != nil {
			return err
		}
		keys := set.Key(tok.Headers[0].KeyID)
		if len(keys) == 0 {
			return jose.ErrJWKSKidNotFound
		}
		var claims josejwt.Claims
		if err := tok.Claims(keys[0].Key, &claims); err != nil {
			return err
		}
		return claims.ValidateWithLeeway(josejwt.Expected{Issuer: issuer, AnyAudience: josejwt.Audience{"emqx"}, Time: at}, 0)
	}

	first := issue()
	set1 := jwks()
	if len(set1.Keys) != 1 {
		t.Fatalf("JWKS has %d keys before any rotation, want 1", len(set1.Keys))
	}
	if err := verify(first, set1, time.Now()); err != nil {
		t.Fatalf("token does not verify against the served JWKS: %v", err)
	}
	if err := verify(first, set1, time.Now().Add(2*time.Minute)); err == nil {
		t.Error("an expired token verified")
	}

	var rot struct{ Kid string }
	r := e.do(http.MethodPost, "/v1/keys/jwt/rotate", testAdmin, nil)
	mustStatus(t, r, 200, "rotate")
	r.json(t, &rot)
	second := issue()
	set2 := jwks()
	if len(set2.Keys) != 2 || set2.Keys[0].KeyID != rot.Kid {
		t.Fatalf("after rotation the JWKS has %d keys, first %q; want 2, first the new %q", len(set2.Keys), set2.Keys[0].KeyID, rot.Kid)
	}
	if err := verify(second, set2, time.Now()); err != nil {
		t.Errorf("new token: %v", err)
	}
	if err := verify(first, set2, time.Now()); err != nil {
		t.Errorf("a token signed before the rotation no longer verifies: %v", err)
	}
	if err := verify(second, set1, time.Now()); err == nil {
		t.Error("a token of the new key verified against the old key set")
	}
	// The private keys never leave: the JWKS holds public members only.
	for _, k := range set2.Keys {
		if !k.IsPublic() {
			t.Errorf("JWKS key %s is not public", k.KeyID)
		}
	}
}
