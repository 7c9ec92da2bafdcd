package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/credsign/credsign/internal/testing/testutil"
)

var b64 = base64.RawURLEncoding

func ecJWK(k *ecdsa.PublicKey) map[string]any {
	raw, _ := k.Bytes() // 0x04 || x || y
	return map[string]any{"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(raw[1:33]), "y": b64.EncodeToString(raw[33:])}
}

const testURL = "https://credsign.example:8443/v1/devices/lamp-7/credentials"

var testNow = time.Unix(1_800_000_000, 0)

func newVerifier(t testing.TB) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{NonceKey: make([]byte, 32), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func goodHeader(k *ecdsa.PrivateKey) map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": ecJWK(&k.PublicKey)}
}

func goodClaims() map[string]any {
	return map[string]any{"jti": "AAAAAAAAAAAAAAAAAAAAAA", "htm": "GET", "htu": testURL, "iat": testNow.Unix()}
}

func TestVerifyAccepts(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v := newVerifier(t)
	for _, htu := range []string{testURL, "HTTPS://CREDSIGN.example:8443/v1/devices/lamp-7/credentials?x=1#f"} {
		c := goodClaims()
		c["htu"] = htu
		p, err := v.Verify(testutil.SignES256(t, k, goodHeader(k), c), "GET", testURL, false)
		if err != nil {
			t.Fatalf("%s: %v", htu, err)
		}
		want, _ := Thumbprint(jose.JSONWebKey{Key: &k.PublicKey})
		if p.KeyID != want || p.JTI != "AAAAAAAAAAAAAAAAAAAAAA" || p.NonceOK {
			t.Errorf("proof %+v", p)
		}
	}
	// Default ports are normalised on both sides.
	c := goodClaims()
	c["htu"] = "https://h.example/v1/enrol"
	if _, err := v.Verify(testutil.SignES256(t, k, goodHeader(k), c), "GET", v.ExpectedURL(true, "h.example:443", "/v1/enrol"), false); err != nil {
		t.Errorf("default port: %v", err)
	}
	// Ed25519, signed by go-jose.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(goodClaims())
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := obj.CompactSerialize()
	p, err := v.Verify(text, "GET", testURL, false)
	if err != nil {
		t.Fatalf("EdDSA: %v", err)
	}
	if _, ok := p.Key.Key.(ed25519.PublicKey); !ok || !pub.Equal(p.Key.Key) {
		t.Errorf("EdDSA key %T", p.Key.Key)
	}
}

// TestVerifyRefuses is every refusal of a proof by the verifier: each
// case breaks one thing of an otherwise good proof.
func TestVerifyRefuses(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	v := newVerifier(t)
	with := func(hmod func(map[string]any), cmod func(map[string]any)) string {
		h, c := goodHeader(k), goodClaims()
		if hmod != nil {
			hmod(h)
		}
		if cmod != nil {
			cmod(c)
		}
		return testutil.SignES256(t, k, h, c)
	}
	good := with(nil, nil)
	parts := strings.Split(good, ".")
	hs256 := func() string {
		h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": ecJWK(&k.PublicKey)})
		c, _ := json.Marshal(goodClaims())
		return b64.EncodeToString(h) + "." + b64.EncodeToString(c) + "." + b64.EncodeToString(make([]byte, 32))
	}()
	none := func() string {
		h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": ecJWK(&k.PublicKey)})
		c, _ := json.Marshal(goodClaims())
		return b64.EncodeToString(h) + "." + b64.EncodeToString(c) + "."
	}()
	withPrivate := with(func(h map[string]any) {
		j := ecJWK(&k.PublicKey)
		d, _ := k.Bytes()
		j["d"] = b64.EncodeToString(d)
		h["jwk"] = j
	}, nil)
	derSig := func() string {
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		der, _ := ecdsa.SignASN1(rand.Reader, k, sum[:])
		return parts[0] + "." + parts[1] + "." + b64.EncodeToString(der)
	}()
	flipped := func() string {
		sig, _ := b64.DecodeString(parts[2])
		sig[10] ^= 1
		return parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig)
	}()
	highS := func() string {
		// The same signature with s replaced by n-s verifies in ECDSA but
		// names the same (r,s) class; go-jose accepts both, which is fine;
		// a flipped r is not.
		sig, _ := b64.DecodeString(parts[2])
		r := new(big.Int).SetBytes(sig[:32])
		r.Add(r, big.NewInt(1))
		r.FillBytes(sig[:32])
		return parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig)
	}()
	for _, tc := range []struct {
		name, proof, method, url string
		want                     Reason
	}{
		{"missing", "", "GET", testURL, Missing},
		{"one part", "abc", "GET", testURL, Malformed},
		{"two dots, garbage", "a.b.c", "GET", testURL, Malformed},
		{"four parts", good + ".x", "GET", testURL, Malformed},
		{"JSON serialization", `{"payload":"` + parts[1] + `"}`, "GET", testURL, Malformed},
		{"too long", good + strings.Repeat("A", MaxProofLen), "GET", testURL, Malformed},
		{"alg none", none, "GET", testURL, Malformed},
		{"alg HS256", hs256, "GET", testURL, Malformed},
		{"alg RS256", with(func(h map[string]any) { h["alg"] = "RS256" }, nil), "GET", testURL, Malformed},
		{"alg EdDSA with EC key", with(func(h map[string]any) { h["alg"] = "EdDSA" }, nil), "GET", testURL, Malformed},
		{"no typ", with(func(h map[string]any) { delete(h, "typ") }, nil), "GET", testURL, Malformed},
		{"typ JWT", with(func(h map[string]any) { h["typ"] = "JWT" }, nil), "GET", testURL, Malformed},
		{"typ number", with(func(h map[string]any) { h["typ"] = 1 }, nil), "GET", testURL, Malformed},
		{"crit", with(func(h map[string]any) { h["crit"] = []string{"x"}; h["x"] = 1 }, nil), "GET", testURL, Malformed},
		{"no jwk", with(func(h map[string]any) { delete(h, "jwk") }, nil), "GET", testURL, Malformed},
		{"jwk private", withPrivate, "GET", testURL, Malformed},
		{"jwk P-384", with(func(h map[string]any) {
			raw, _ := p384.PublicKey.Bytes()
			j := map[string]any{"kty": "EC", "crv": "P-384", "x": b64.EncodeToString(raw[1:49]), "y": b64.EncodeToString(raw[49:])}
			h["jwk"] = j
		}, nil), "GET", testURL, Malformed},
		{"jwk not on curve", with(func(h map[string]any) { j := ecJWK(&k.PublicKey); j["y"] = j["x"]; h["jwk"] = j }, nil), "GET", testURL, Malformed},
		{"jwk symmetric", with(func(h map[string]any) { h["jwk"] = map[string]any{"kty": "oct", "k": "AAAA"} }, nil), "GET", testURL, Malformed},
		{"jwk string", with(func(h map[string]any) { h["jwk"] = "x" }, nil), "GET", testURL, Malformed},
		{"other key's jwk (foreign signature)", with(func(h map[string]any) { h["jwk"] = ecJWK(&other.PublicKey) }, nil), "GET", testURL, BadSignature},
		{"DER signature", derSig, "GET", testURL, BadSignature},
		{"flipped signature bit", flipped, "GET", testURL, BadSignature},
		{"r+1", highS, "GET", testURL, BadSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", "GET", testURL, BadSignature},
		{"no jti", with(nil, func(c map[string]any) { delete(c, "jti") }), "GET", testURL, Malformed},
		{"short jti", with(nil, func(c map[string]any) { c["jti"] = "short" }), "GET", testURL, Malformed},
		{"long jti", with(nil, func(c map[string]any) { c["jti"] = strings.Repeat("a", 65) }), "GET", testURL, Malformed},
		{"jti number", with(nil, func(c map[string]any) { c["jti"] = 1234567890123456789 }), "GET", testURL, Malformed},
		{"no htm", with(nil, func(c map[string]any) { delete(c, "htm") }), "GET", testURL, Malformed},
		{"htm number", with(nil, func(c map[string]any) { c["htm"] = 1 }), "GET", testURL, Malformed},
		{"no htu", with(nil, func(c map[string]any) { delete(c, "htu") }), "GET", testURL, Malformed},
		{"htu not a URL", with(nil, func(c map[string]any) { c["htu"] = "lamp-7" }), "GET", testURL, Malformed},
		{"htu ftp", with(nil, func(c map[string]any) { c["htu"] = "ftp://credsign.example/v1" }), "GET", testURL, Malformed},
		{"no iat", with(nil, func(c map[string]any) { delete(c, "iat") }), "GET", testURL, Malformed},
		{"iat string", with(nil, func(c map[string]any) { c["iat"] = "1800000000" }), "GET", testURL, Malformed},
		{"iat fraction", with(nil, func(c map[string]any) { c["iat"] = 1800000000.5 }), "GET", testURL, Malformed},
		{"nonce number", with(nil, func(c map[string]any) { c["nonce"] = 5 }), "GET", testURL, Malformed},
		{"claims not JSON", parts[0] + "." + b64.EncodeToString([]byte("[1]")) + "." + parts[2], "GET", testURL, BadSignature},
		{"wrong method", good, "POST", testURL, WrongMethod},
		{"lowercase method", with(nil, func(c map[string]any) { c["htm"] = "get" }), "GET", testURL, WrongMethod},
		{"other device's URL", good, "GET", strings.Replace(testURL, "lamp-7", "lamp-8", 1), WrongURL},
		{"other host", good, "GET", strings.Replace(testURL, "credsign.example", "evil.example", 1), WrongURL},
		{"other port", good, "GET", strings.Replace(testURL, "8443", "9443", 1), WrongURL},
		{"http for https", good, "GET", strings.Replace(testURL, "https", "http", 1), WrongURL},
		{"path case", good, "GET", strings.Replace(testURL, "credentials", "Credentials", 1), WrongURL},
		{"stale", with(nil, func(c map[string]any) { c["iat"] = testNow.Add(-61 * time.Second).Unix() }), "GET", testURL, Stale},
		{"iat zero", with(nil, func(c map[string]any) { c["iat"] = 0 }), "GET", testURL, Stale},
		{"future", with(nil, func(c map[string]any) { c["iat"] = testNow.Add(6 * time.Second).Unix() }), "GET", testURL, Future},
		{"bad nonce", with(nil, func(c map[string]any) { c["nonce"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }), "GET", testURL, BadNonce},
		{"old nonce", with(nil, func(c map[string]any) { c["nonce"] = v.nonceAt(uint64(testNow.Unix()/60 - NonceSteps - 1)) }), "GET", testURL, BadNonce},
		{"future nonce", with(nil, func(c map[string]any) { c["nonce"] = v.nonceAt(uint64(testNow.Unix()/60 + 1)) }), "GET", testURL, BadNonce},
	} {
		// Cold: go-jose parses the header; warm: a good proof with the
		// same header was verified before, so the header comes from the
		// cache and only the signature is checked again.
		for _, warm := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: " (cold)", true: " (warm)"}[warm], func(t *testing.T) {
				v := newVerifier(t)
				if warm {
					if _, err := v.Verify(good, "GET", testURL, false); err != nil {
						t.Fatal(err)
					}
				}
				_, err := v.Verify(tc.proof, tc.method, tc.url, false)
				if got := ReasonOf(err); got != tc.want {
					t.Fatalf("reason %q (%v), want %q", got, err, tc.want)
				}
				if strings.Contains(err.Error(), tc.proof) && tc.proof != "" {
					t.Errorf("the error quotes the proof")
				}
			})
		}
	}
	// A nonce is required: a proof without one is refused, one with one
	// is accepted even with iat 0 (a device without a clock).
	if _, err := v.Verify(good, "GET", testURL, true); ReasonOf(err) != UseNonce {
		t.Errorf("required nonce: %v", err)
	}
	noClock := with(nil, func(c map[string]any) { c["iat"] = 0; c["nonce"] = v.Nonce() })
	if p, err := v.Verify(noClock, "GET", testURL, true); err != nil || !p.NonceOK {
		t.Errorf("nonce, iat 0: %+v %v", p, err)
	}
}

func TestAcceptRefusesReplay(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := testNow
	v, err := NewVerifier(Config{NonceKey: make([]byte, 32), Now: func() time.Time { return now }, MaxJTIs: 3})
	if err != nil {
		t.Fatal(err)
	}
	proof := testutil.SignES256(t, k, goodHeader(k), goodClaims())
	p, err := v.Verify(proof, "GET", testURL, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Accept(p); err != nil {
		t.Fatal(err)
	}
	// Replayed at once, and after time passes (up to the window).
	for _, d := range []time.Duration{0, time.Second, replayWindow, 2*replayWindow - time.Second} {
		now = testNow.Add(d)
		if err := v.Accept(p); ReasonOf(err) != Replayed {
			t.Errorf("+%v: %v, want replayed", d, err)
		}
	}
	// The same jti under another key is another proof.
	q := p
	q.KeyID = "other"
	if err := v.Accept(q); err != nil {
		t.Errorf("other key: %v", err)
	}
	// The cache is bounded: full, it refuses rather than forgets.
	for i := range 3 {
		q.JTI = strings.Repeat("x", 16+i)
		err = v.Accept(q)
	}
	if !errors.Is(err, ErrBusy) {
		t.Errorf("full cache: %v, want ErrBusy", err)
	}
}

func TestParseKey(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	j := ecJWK(&k.PublicKey)
	raw, _ := json.Marshal(j)
	key, kid, err := ParseKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Thumbprint(jose.JSONWebKey{Key: &k.PublicKey})
	if kid != want || !key.Key.(*ecdsa.PublicKey).Equal(&k.PublicKey) {
		t.Errorf("kid %q", kid)
	}
	d, _ := k.Bytes()
	j["d"] = b64.EncodeToString(d)
	priv, _ := json.Marshal(j)
	for _, bad := range []string{string(priv), `{"kty":"oct","k":"AAAA"}`, `{"kty":"EC","crv":"P-256"}`, `[]`, `{"kty":"RSA","n":"AQAB","e":"AQAB"}`} {
		if _, _, err := ParseKey([]byte(bad)); err == nil {
			t.Errorf("%.40s accepted", bad)
		} else if strings.Contains(err.Error(), b64.EncodeToString(d)) {
			t.Errorf("the error quotes the private key")
		}
	}
}

func FuzzVerify(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(testutil.SignES256(f, k, goodHeader(k), goodClaims()))
	f.Add("a.b.c")
	f.Add("")
	v := newVerifier(f)
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := v.Verify(proof, "GET", testURL, false)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		if p.KeyID == "" || len(p.JTI) < MinJTI {
			t.Fatalf("accepted a proof without key or jti: %+v", p)
		}
	})
}
