package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
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

// TestDeviceKeyProofMalformed: a proof wrong in any one field of its
// header, claims or signature, or in its structure, is refused with 401
// and its reason, for credentials and for enrolment, and changes nothing:
// the device, its keys and its tokens stay as they were, no device is
// enrolled, and a refused proof that reuses a good proof's jti does not
// burn it (the good proof is accepted afterwards). Each case breaks one
// thing of a proof that is otherwise accepted.
func TestDeviceKeyProofMalformed(t *testing.T) {
	f := newFixture(t)
	const path = "/v1/devices/aliyun-1/credentials"
	url := f.url + path
	k, jwk := newTestKey(t)
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1/keys", f.prov, map[string]any{"jwk": jwk}), 201, "add key")
	foreign, _ := newTestKey(t)

	// build signs a proof for target after edit changes its header and
	// claims (a fresh jti each time).
	build := func(signer *ecdsa.PrivateKey, target string, edit func(h, c map[string]any)) string {
		jti := make([]byte, 16)
		_, _ = rand.Read(jti)
		h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": maps.Clone(jwk)}
		c := map[string]any{"jti": rawURL.EncodeToString(jti), "htm": "POST", "htu": target, "iat": time.Now().Unix()}
		if edit != nil {
			edit(h, c)
		}
		return testutil.SignES256(t, signer, h, c)
	}
	jwkWith := func(key string, v any) func(h, _ map[string]any) {
		return func(h, _ map[string]any) {
			j := h["jwk"].(map[string]any)
			if v == nil {
				delete(j, key)
			} else {
				j[key] = v
			}
		}
	}
	set := func(m string, key string, v any) func(h, c map[string]any) {
		return func(h, c map[string]any) {
			tgt := c
			if m == "header" {
				tgt = h
			}
			if v == nil {
				delete(tgt, key)
			} else {
				tgt[key] = v
			}
		}
	}
	// raw re-signs arbitrary header and claims texts with k.
	raw := func(header, claims string) string { return testutil.SignES256Texts(t, k, header, claims) }
	hdrJSON, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk})
	// withSig replaces the signature of a good proof.
	withSig := func(p string, sig func(parts []string) string) string {
		parts := strings.Split(p, ".")
		return parts[0] + "." + parts[1] + "." + sig(parts)
	}
	der := func(parts []string) string {
		b, _ := rawURL.DecodeString(parts[2])
		r, s := new(big.Int).SetBytes(b[:32]), new(big.Int).SetBytes(b[32:])
		d, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		if err != nil {
			t.Fatal(err)
		}
		return rawURL.EncodeToString(d)
	}
	type tc struct{ name, proof, reason string }
	// cases are built per target (credentials or enrolment URL).
	cases := func(target string) []tc {
		good := build(k, target, nil)
		gparts := strings.Split(good, ".")
		otherClaims := strings.Split(build(k, target, nil), ".")[1]
		return []tc{
			// header
			{"typ missing", build(k, target, set("header", "typ", nil)), "malformed"},
			{"typ JWT", build(k, target, set("header", "typ", "JWT")), "malformed"},
			{"alg none", strings.Join([]string{rawURL.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"none","jwk":` + mustJSON(jwk) + `}`)), gparts[1], ""}, "."), "malformed"},
			{"alg HS256", build(k, target, set("header", "alg", "HS256")), "malformed"},
			{"alg RS256", build(k, target, set("header", "alg", "RS256")), "malformed"},
			{"alg ES384", build(k, target, set("header", "alg", "ES384")), "malformed"},
			{"alg EdDSA for an EC key", build(k, target, set("header", "alg", "EdDSA")), "malformed"},
			{"alg missing", build(k, target, set("header", "alg", nil)), "malformed"},
			{"jwk missing", build(k, target, set("header", "jwk", nil)), "malformed"},
			{"jwk with a private member", build(k, target, jwkWith("d", rawURL.EncodeToString(testutil.PrivateBytes(t, k)))), "malformed"},
			{"jwk kty RSA", build(k, target, jwkWith("kty", "RSA")), "malformed"},
			{"jwk crv P-384", build(k, target, jwkWith("crv", "P-384")), "malformed"},
			{"jwk off the curve", build(k, target, jwkWith("y", rawURL.EncodeToString(make([]byte, 32)))), "malformed"},
			{"jwk without y", build(k, target, jwkWith("y", nil)), "malformed"},
			{"jwk a string", build(k, target, set("header", "jwk", "key")), "malformed"},
			{"kid instead of jwk", build(k, target, func(h, _ map[string]any) { delete(h, "jwk"); h["kid"] = "DOvxvJiAdIqVWIkFt5hDtCunXLF0BV4-JGv4f-ALSm0" }), "malformed"},
			{"crit", build(k, target, set("header", "crit", []string{"exp"})), "malformed"},
			{"header not JSON", raw(`{"typ":"dpop+jwt",`, `{}`), "malformed"},
			// claims
			{"jti missing", build(k, target, set("claims", "jti", nil)), "malformed"},
			{"jti short", build(k, target, set("claims", "jti", "abc")), "malformed"},
			{"jti long", build(k, target, set("claims", "jti", strings.Repeat("a", 65))), "malformed"},
			{"jti a number", build(k, target, set("claims", "jti", 1234567890123456789)), "malformed"},
			{"htm missing", build(k, target, set("claims", "htm", nil)), "malformed"},
			{"htm lower case", build(k, target, set("claims", "htm", "post")), "wrong-method"},
			{"htm GET", build(k, target, set("claims", "htm", "GET")), "wrong-method"},
			{"htu missing", build(k, target, set("claims", "htu", nil)), "malformed"},
			{"htu relative", build(k, target, set("claims", "htu", strings.TrimPrefix(target, f.url))), "malformed"},
			{"htu other scheme", build(k, target, set("claims", "htu", strings.Replace(target, "http://", "https://", 1))), "wrong-url"},
			{"htu other port", build(k, target, set("claims", "htu", strings.Replace(target, "127.0.0.1:", "127.0.0.1:1", 1))), "wrong-url"},
			{"htu other path", build(k, target, set("claims", "htu", target+"/x")), "wrong-url"},
			{"iat missing", build(k, target, set("claims", "iat", nil)), "malformed"},
			{"iat a string", build(k, target, set("claims", "iat", fmt.Sprint(time.Now().Unix()))), "malformed"},
			{"iat backdated", build(k, target, set("claims", "iat", time.Now().Add(-61*time.Second).Unix())), "stale"},
			{"iat forward-dated", build(k, target, set("claims", "iat", time.Now().Add(30*time.Second).Unix())), "future"},
			{"iat zero without a nonce", build(k, target, set("claims", "iat", 0)), "stale"},
			{"nonce a number", build(k, target, set("claims", "nonce", 42)), "malformed"},
			{"nonce forged", build(k, target, set("claims", "nonce", rawURL.EncodeToString(make([]byte, 24)))), "bad-nonce"},
			{"claims not JSON", raw(string(hdrJSON), `{"jti":`), "malformed"},
			{"claims an array", raw(string(hdrJSON), `[]`), "malformed"},
			// signature
			{"signature empty", withSig(good, func([]string) string { return "" }), "bad-signature"},
			{"signature DER", withSig(good, der), "bad-signature"},
			{"signature short", withSig(good, func(p []string) string { b, _ := rawURL.DecodeString(p[2]); return rawURL.EncodeToString(b[:63]) }), "bad-signature"},
			{"signature padded", withSig(good, func(p []string) string { return p[2] + "==" }), "bad-signature"},
			{"signature by another key", build(foreign, target, nil), "bad-signature"},
			{"signature over other claims", gparts[0] + "." + otherClaims + "." + gparts[2], "bad-signature"},
			{"signature zero", withSig(good, func([]string) string { return rawURL.EncodeToString(make([]byte, 64)) }), "bad-signature"},
			// structure
			{"two parts", gparts[0] + "." + gparts[1], "malformed"},
			{"four parts", good + "." + gparts[2], "malformed"},
			{"JSON serialization", `{"protected":"` + gparts[0] + `","payload":"` + gparts[1] + `","signature":"` + gparts[2] + `"}`, "malformed"},
			{"not base64url", strings.Replace(good, gparts[0][:4], "+/+/", 1), "malformed"},
		}
	}

	state := func() string {
		var b strings.Builder
		for _, p := range []string{"/v1/devices/aliyun-1", "/v1/devices/aliyun-1/keys", "/v1/devices/aliyun-1/tokens"} {
			r := f.do("GET", p, f.prov, nil)
			b.WriteString(r.header.Get("ETag"))
			b.Write(r.body)
		}
		return b.String()
	}
	before := state()
	for _, c := range cases(url) {
		t.Run("credentials/"+c.name, func(t *testing.T) {
			r := f.do("POST", path, "", nil, "DPoP", c.proof)
			var p problemReason
			r.json(t, &p)
			if r.status != 401 || p.Reason != c.reason {
				t.Fatalf("status %d reason %q, want 401 %q: %s", r.status, p.Reason, c.reason, r.body)
			}
			if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "DPoP ") {
				t.Errorf("WWW-Authenticate %q", ch)
			}
		})
	}
	if after := state(); after != before {
		t.Errorf("refused proofs changed the device:\nbefore %s\nafter  %s", before, after)
	}
	// A refused proof does not burn the jti it carries: the good proof with
	// the same jti is accepted after a bad-signature copy of it.
	good := build(k, url, nil)
	mustStatus(t, f.do("POST", path, "", nil, "DPoP", withSig(good, der)), 401, "DER copy of a good proof")
	mustStatus(t, f.do("POST", path, "", nil, "DPoP", good), 200, "the good proof after its refused copy")

	// Enrolment: the same proofs for /v1/enrol, with the enrolment token,
	// enrol nothing.
	for i, c := range cases(f.url + "/v1/enrol") {
		t.Run("enrol/"+c.name, func(t *testing.T) {
			id := fmt.Sprintf("bad-%d", i)
			r := f.do("POST", "/v1/enrol", f.enrol, map[string]any{"deviceId": id}, "DPoP", c.proof)
			var p problemReason
			r.json(t, &p)
			if r.status != 401 || p.Reason != c.reason {
				t.Fatalf("status %d reason %q, want 401 %q: %s", r.status, p.Reason, c.reason, r.body)
			}
			mustStatus(t, f.do("GET", "/v1/devices/"+id, f.prov, nil), 404, "nothing enrolled")
		})
	}
}
