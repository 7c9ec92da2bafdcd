package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
)

var rawURL = base64.RawURLEncoding

// newTestKey returns a P-256 key and its public JWK.
func newTestKey(t testing.TB) (*ecdsa.PrivateKey, map[string]any) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := k.PublicKey.Bytes() // 0x04 || x || y
	return k, map[string]any{"kty": "EC", "crv": "P-256", "x": rawURL.EncodeToString(raw[1:33]), "y": rawURL.EncodeToString(raw[33:])}
}

// proofFor returns a fresh proof by k for method and url; mod changes its
// claims before signing.
func proofFor(t testing.TB, k *ecdsa.PrivateKey, jwk map[string]any, method, url string, mod func(map[string]any)) string {
	t.Helper()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c := map[string]any{"jti": rawURL.EncodeToString(jti), "htm": method, "htu": url, "iat": time.Now().Unix()}
	if mod != nil {
		mod(c)
	}
	return testutil.SignES256(t, k, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}, c)
}

type problemReason struct {
	Status int
	Reason string
}

// TestDeviceKeyProofs binds a key to a device, issues with proofs of it,
// and refuses every kind of bad proof with 401, its reason, a DPoP
// challenge, and nothing changed.
func TestDeviceKeyProofs(t *testing.T) {
	f := newFixture(t)
	const path = "/v1/devices/aliyun-1/credentials"
	url := f.url + path
	k, jwk := newTestKey(t)
	r := f.do("POST", "/v1/devices/aliyun-1/keys", f.prov, map[string]any{"jwk": jwk, "name": "factory"})
	mustStatus(t, r, 201, "add key")
	var added struct{ Kid, Attestation, Name string }
	r.json(t, &added)
	if len(added.Kid) != 43 || added.Attestation != "none" || added.Name != "factory" {
		t.Fatalf("added %+v", added)
	}
	// The same key again, a private key, a fifth key.
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1/keys", f.prov, map[string]any{"jwk": jwk}), 409, "same key")
	priv := map[string]any{"d": "AAAA"}
	for k, v := range jwk {
		priv[k] = v
	}
	r = f.do("POST", "/v1/devices/aliyun-1/keys", f.prov, map[string]any{"jwk": priv})
	mustStatus(t, r, 422, "private key")
	if strings.Contains(string(r.body), "AAAA") {
		t.Errorf("the refusal quotes the private key: %s", r.body)
	}
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1/keys", f.prov, map[string]any{"jwk": map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}), 422, "not on the curve")
	mustStatus(t, f.do("POST", "/v1/devices/nope/keys", f.prov, map[string]any{"jwk": jwk}), 404, "no device")

	// Issuing with a proof, no Authorization.
	r = f.do("POST", path, "", nil, "DPoP", proofFor(t, k, jwk, "POST", url, nil))
	mustStatus(t, r, 200, "issue with a proof")
	nonce := r.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce")
	}
	// A device without a clock: iat 0 with the server's nonce.
	r = f.do("POST", path, "", nil, "DPoP", proofFor(t, k, jwk, "POST", url, func(c map[string]any) { c["iat"] = 0; c["nonce"] = nonce }))
	mustStatus(t, r, 200, "issue with a nonce")

	other, otherJWK := newTestKey(t)
	mustStatus(t, f.do("POST", "/v1/devices/tencent-1/keys", f.prov, map[string]any{"jwk": otherJWK}), 201, "key of another device")
	foreign, foreignJWK := newTestKey(t)
	removed, removedJWK := newTestKey(t)
	r = f.do("POST", "/v1/devices/aliyun-1/keys", f.prov, map[string]any{"jwk": removedJWK})
	mustStatus(t, r, 201, "key to remove")
	var rk struct{ Kid string }
	r.json(t, &rk)
	mustStatus(t, f.do("DELETE", "/v1/devices/aliyun-1/keys/"+rk.Kid, f.prov, nil), 204, "remove key")
	mustStatus(t, f.do("DELETE", "/v1/devices/aliyun-1/keys/"+rk.Kid, f.prov, nil), 404, "remove it again")

	replayed := proofFor(t, k, jwk, "POST", url, nil)
	mustStatus(t, f.do("POST", path, "", nil, "DPoP", replayed), 200, "first use")
	good := proofFor(t, k, jwk, "POST", url, nil)
	parts := strings.Split(good, ".")
	before := f.do("GET", "/v1/devices/aliyun-1", f.prov, nil)
	for _, tc := range []struct {
		name, proof, reason string
	}{
		{"missing", "", "missing"},
		{"malformed", "not-a-jws", "malformed"},
		{"malformed claims", proofFor(t, k, jwk, "POST", url, func(c map[string]any) { delete(c, "jti") }), "malformed"},
		{"bad signature", parts[0] + "." + parts[1] + "." + rawURL.EncodeToString(make([]byte, 64)), "bad-signature"},
		{"stale", proofFor(t, k, jwk, "POST", url, func(c map[string]any) { c["iat"] = time.Now().Add(-2 * time.Minute).Unix() }), "stale"},
		{"future", proofFor(t, k, jwk, "POST", url, func(c map[string]any) { c["iat"] = time.Now().Add(time.Minute).Unix() }), "future"},
		{"replayed", replayed, "replayed"},
		{"wrong URL", proofFor(t, k, jwk, "POST", strings.Replace(url, "aliyun-1", "tencent-1", 1), nil), "wrong-url"},
		{"wrong method", proofFor(t, k, jwk, "GET", url, nil), "wrong-method"},
		{"other device's key", proofFor(t, other, otherJWK, "POST", url, nil), "unknown-key"},
		{"removed key", proofFor(t, removed, removedJWK, "POST", url, nil), "unknown-key"},
		{"foreign key", proofFor(t, foreign, foreignJWK, "POST", url, nil), "unknown-key"},
		{"bad nonce", proofFor(t, k, jwk, "POST", url, func(c map[string]any) { c["nonce"] = strings.Repeat("A", 32) }), "bad-nonce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do("POST", path, "", nil, "DPoP", tc.proof)
			var p problemReason
			r.json(t, &p)
			if r.status != 401 || p.Reason != tc.reason {
				t.Fatalf("status %d reason %q, want 401 %q: %s", r.status, p.Reason, tc.reason, r.body)
			}
			if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `error_description="`+tc.reason+`"`) {
				t.Errorf("WWW-Authenticate %q", ch)
			}
			if r.header.Get("DPoP-Nonce") == "" {
				t.Errorf("a refusal without DPoP-Nonce")
			}
		})
	}
	after := f.do("GET", "/v1/devices/aliyun-1", f.prov, nil)
	if before.header.Get("ETag") != after.header.Get("ETag") {
		t.Errorf("a refused proof changed the device")
	}
	// A proof for a device does not work on another device's path, even
	// with that device's URL.
	otherURL := f.url + "/v1/devices/tencent-1/credentials"
	r = f.do("POST", "/v1/devices/tencent-1/credentials", "", nil, "DPoP", proofFor(t, k, jwk, "POST", otherURL, nil))
	mustStatus(t, r, 401, "key of aliyun-1 on tencent-1")

	// requireKey: the device's bearer token is refused, proofs work.
	mustStatus(t, f.do("POST", path, f.dev, nil), 200, "bearer before requireKey")
	doc := devices()["aliyun"]
	doc["requireKey"] = true
	r = f.do("PUT", "/v1/devices/aliyun-1", f.prov, doc)
	mustStatus(t, r, 200, "requireKey")
	r = f.do("POST", path, f.dev, nil)
	var p problemReason
	r.json(t, &p)
	if r.status != 401 || p.Reason != "key-required" {
		t.Fatalf("bearer with requireKey: %d %s", r.status, r.body)
	}
	// The PUT kept the device's key.
	mustStatus(t, f.do("POST", path, "", nil, "DPoP", proofFor(t, k, jwk, "POST", url, nil)), 200, "proof after the PUT")
	r = f.do("GET", "/v1/devices/aliyun-1/keys", f.prov, nil)
	var list struct{ Keys []struct{ Kid string } }
	r.json(t, &list)
	if len(list.Keys) != 1 || list.Keys[0].Kid != added.Kid {
		t.Errorf("keys after PUT: %s", r.body)
	}
}

// TestEnrolWithKey enrols a device with a proof: its key is bound, no
// bearer token is issued, and its proofs issue credentials.
func TestEnrolWithKey(t *testing.T) {
	f := newFixture(t)
	k, jwk := newTestKey(t)
	r := f.do("POST", "/v1/enrol", f.enrol, map[string]any{"deviceId": "keyed-1"}, "DPoP", proofFor(t, k, jwk, "POST", f.url+"/v1/enrol", nil))
	mustStatus(t, r, 201, "enrol with a key")
	var e map[string]any
	r.json(t, &e)
	if _, ok := e["token"]; ok || e["keyId"] == nil || len(e["keyId"].(string)) != 43 {
		t.Fatalf("enrolled: %s", r.body)
	}
	url := f.url + "/v1/devices/keyed-1/credentials"
	mustStatus(t, f.do("POST", "/v1/devices/keyed-1/credentials", "", nil, "DPoP", proofFor(t, k, jwk, "POST", url, nil)), 200, "issue")
	// A proof for another URL is refused and enrols nothing.
	r = f.do("POST", "/v1/enrol", f.enrol, map[string]any{"deviceId": "keyed-2"}, "DPoP", proofFor(t, k, jwk, "POST", f.url+"/v1/devices", nil))
	mustStatus(t, r, 401, "enrol with a proof for another URL")
	mustStatus(t, f.do("GET", "/v1/devices/keyed-2", f.prov, nil), 404, "nothing enrolled")
	// A device of the group enrolled with a token, before the group
	// requires keys.
	r = f.do("POST", "/v1/enrol", f.enrol, map[string]any{"deviceId": "bearer-1"})
	mustStatus(t, r, 201, "enrol with a token")
	var tokened struct{ Token string }
	r.json(t, &tokened)
	mustStatus(t, f.do("POST", "/v1/devices/bearer-1/credentials", tokened.Token, nil), 200, "bearer before the group requires keys")
	// A group that requires keys refuses its devices' bearer tokens, and
	// enrolment without a key.
	g := groupDoc()
	g["requireKey"] = true
	mustStatus(t, f.do("PUT", "/v1/groups/grp", f.prov, g), 200, "group requireKey")
	r = f.do("POST", "/v1/enrol", f.enrol, map[string]any{"deviceId": "keyed-3"})
	var p problemReason
	r.json(t, &p)
	if r.status != 401 || p.Reason != "key-required" {
		t.Fatalf("enrol without a key in a group that requires one: %d %s", r.status, r.body)
	}
	mustStatus(t, f.do("GET", "/v1/devices/keyed-3", f.prov, nil), 404, "nothing enrolled")
	r = f.do("POST", "/v1/devices/bearer-1/credentials", tokened.Token, nil)
	r.json(t, &p)
	if r.status != 401 || p.Reason != "key-required" {
		t.Fatalf("a group device's bearer token in a group that requires keys: %d %s", r.status, r.body)
	}
}
