package clients_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/credsign/credsign/internal/testing/emutest"
	"github.com/credsign/credsign/internal/testing/testutil"
)

// The device-key tests run the C and Python clients with CREDSIGN_KEY: each
// credentials request must carry a DPoP proof (docs/devices.md, RFC 9449)
// signed by the device key and no Authorization header. The C client's key
// is a PEM file or a key generated inside a SoftHSM2 token (a real PKCS#11
// token) that never leaves it; the Python client's is a PEM file.
//
// The keys are bound through the real API (POST /v1/devices/{id}/keys, or
// the clients' own enrol) and the clients run against the real server,
// which verifies every proof. Every proof is also checked here
// independently of both the clients' and the server's code, with go-jose v4
// and crypto/ecdsa, against the public key the test knows (read out of the
// token for SoftHSM2): the key's signature over the exact bytes sent, typ,
// alg, the embedded JWK, jti, htm, htu, iat and the nonce.

// vectorKey is the P-256 key of RFC 6979 appendix A.2.5 (a published key),
// the key of docs/devices.md's vector.
var vectorKey = struct{ dHex, x, y string }{
	dHex: "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721",
	x:    "YP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Y",
	y:    "eQP-EAi4vJmkGunpVii8ZPLxsgwtfp9Rd6PClNRGIpk",
}

// proofVectors are docs/devices.md's vector ("A worked example and a test
// vector") and the same with a nonce: the inputs, and the exact JSON of the
// header and the claims a client must build from them. The clients sign
// with randomized ECDSA (neither Debian 12's OpenSSL 3.0 nor its
// python3-cryptography 38 has RFC 6979), so the test fixes the signing
// input, base64url(header) "." base64url(claims), byte for byte, and
// verifies the signature with the key.
var proofVectors = []struct {
	name, htm, htu, jti, nonce string
	iat                        int64
	header, claims             string
}{
	{
		name: "docs", htm: "POST", htu: "https://credsign.example/v1/devices/lamp-7/credentials",
		jti: "3q2-7wAAAAAAAAAAAAAAAA", iat: 1795000000,
		header: `{"typ":"dpop+jwt","alg":"ES256","jwk":{"crv":"P-256","kty":"EC","x":"YP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Y","y":"eQP-EAi4vJmkGunpVii8ZPLxsgwtfp9Rd6PClNRGIpk"}}`,
		claims: `{"jti":"3q2-7wAAAAAAAAAAAAAAAA","htm":"POST","htu":"https://credsign.example/v1/devices/lamp-7/credentials","iat":1795000000}`,
	},
	{
		name: "with a nonce", htm: "POST", htu: "https://credsign.example:8443/v1/enrol",
		jti: "AAECAwQFBgcICQoLDA0ODw", iat: 0, nonce: "eyJ7S_zG.eyJH0-Z.HX4w-7v",
		header: `{"typ":"dpop+jwt","alg":"ES256","jwk":{"crv":"P-256","kty":"EC","x":"YP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Y","y":"eQP-EAi4vJmkGunpVii8ZPLxsgwtfp9Rd6PClNRGIpk"}}`,
		claims: `{"jti":"AAECAwQFBgcICQoLDA0ODw","htm":"POST","htu":"https://credsign.example:8443/v1/enrol","iat":0,"nonce":"eyJ7S_zG.eyJH0-Z.HX4w-7v"}`,
	},
}

// vectorSigningInput and vectorKid are the vector's signing input and the
// key's RFC 7638 thumbprint as docs/devices.md prints them.
const (
	vectorSigningInput = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7ImNydiI6IlAtMjU2Iiwia3R5IjoiRUMiLCJ4IjoiWVA3VXVpVmFuVEhKWWV0MHhqVnRhTUJKdUpJN1lmcHM1bWxpTG1EeW43WSIsInkiOiJlUVAtRUFpNHZKbWtHdW5wVmlpOFpQTHhzZ3d0ZnA5UmQ2UENsTlJHSXBrIn19" +
		".eyJqdGkiOiIzcTItN3dBQUFBQUFBQUFBQUFBQUFBIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vY3JlZHNpZ24uZXhhbXBsZS92MS9kZXZpY2VzL2xhbXAtNy9jcmVkZW50aWFscyIsImlhdCI6MTc5NTAwMDAwMH0"
	vectorKid = "DOvxvJiAdIqVWIkFt5hDtCunXLF0BV4-JGv4f-ALSm0"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// pemKeyFile writes k as a PKCS#8 PEM file with mode perm.
func pemKeyFile(t *testing.T, k *ecdsa.PrivateKey, perm os.FileMode) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	f := testutil.WriteFile(t, "device-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err := os.Chmod(f, perm); err != nil {
		t.Fatal(err)
	}
	return f
}

// keyRuntime is a client able to sign with a device key, and how to give
// it one.
type keyRuntime struct {
	name string
	// command is the client's command line (args: a key command, or none to
	// run) with the key's settings in its environment.
	command func(t *testing.T, s settings, key deviceKeyRef, args ...string) *exec.Cmd
}

// deviceKeyRef is a key as a client is told of it: CREDSIGN_KEY and, for a
// token, the PKCS#11 settings.
type deviceKeyRef struct {
	spec string
	env  []string
}

var keyRuntimes = []keyRuntime{
	{"python", func(t *testing.T, s settings, k deviceKeyRef, args ...string) *exec.Cmd {
		t.Helper()
		c := pythonCommand(t, s)
		if exec.Command(c.Path, "-c", "import cryptography").Run() != nil {
			missing(t, "no python3-cryptography for %s", c.Path)
		}
		c.Args = append(c.Args, args...)
		c.Env = append(c.Env, "CREDSIGN_KEY="+k.spec)
		c.Env = append(c.Env, k.env...)
		return c
	}},
	{"c", func(t *testing.T, s settings, k deviceKeyRef, args ...string) *exec.Cmd {
		t.Helper()
		c := cCommand(t, s)
		c.Args = append(c.Args, args...)
		c.Env = append(c.Env, "CREDSIGN_KEY="+k.spec)
		c.Env = append(c.Env, k.env...)
		return c
	}},
}

// TestKeyProofVector: each client, given the vector's key and inputs
// (proof METHOD URL IAT JTI [NONCE]), builds exactly the vector's signing
// input and signs it with the key (ES256, r||s).
func TestKeyProofVector(t *testing.T) {
	// The vector itself: its JSON is the spec's, its signing input and
	// thumbprint the ones docs/devices.md prints.
	d, err := hex.DecodeString(vectorKey.dHex)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		t.Fatal(err)
	}
	if pub, err := priv.PublicKey.Bytes(); err != nil || string(pub) != "\x04"+string(testutil.Decode(t, base64.RawURLEncoding.DecodeString, vectorKey.x))+string(testutil.Decode(t, base64.RawURLEncoding.DecodeString, vectorKey.y)) {
		t.Fatalf("the vector key's d does not give its x and y (%v)", err)
	}
	if got := b64(proofVectors[0].header) + "." + b64(proofVectors[0].claims); got != vectorSigningInput {
		t.Fatalf("the vector's signing input is %s", got)
	}
	jwk := jose.JSONWebKey{Key: &priv.PublicKey}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil || base64.RawURLEncoding.EncodeToString(tp) != vectorKid {
		t.Fatalf("the vector key's thumbprint is %s (%v)", base64.RawURLEncoding.EncodeToString(tp), err)
	}
	keyFile := pemKeyFile(t, priv, 0o600)
	for _, rt := range keyRuntimes {
		for _, v := range proofVectors {
			t.Run(rt.name+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				args := []string{"proof", v.htm, v.htu, fmt.Sprint(v.iat), v.jti}
				if v.nonce != "" {
					args = append(args, v.nonce)
				}
				c := rt.command(t, settings{}, deviceKeyRef{spec: keyFile}, args...)
				var stderr strings.Builder
				c.Stderr = &stderr
				out, err := c.Output()
				if err != nil {
					t.Fatalf("%v: %s", err, stderr.String())
				}
				proof := strings.TrimSpace(string(out))
				want := b64(v.header) + "." + b64(v.claims)
				i := strings.LastIndexByte(proof, '.')
				if i < 0 || proof[:i] != want {
					t.Fatalf("signing input\n got %s\nwant %s", proof[:max(i, 0)], want)
				}
				verifyES256(t, proof, &priv.PublicKey)
				if !strings.Contains(stderr.String(), vectorKid) {
					t.Errorf("the client did not log the key's thumbprint %s: %s", vectorKid, stderr.String())
				}
			})
		}
	}
}

// verifyES256 checks proof's signature with crypto/ecdsa alone: 64 bytes,
// r||s, over SHA-256 of the signing input.
func verifyES256(t *testing.T, proof string, pub *ecdsa.PublicKey) {
	t.Helper()
	i := strings.LastIndexByte(proof, '.')
	sig, err := base64.RawURLEncoding.DecodeString(proof[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature of %d bytes (%v); want r||s, 64 bytes (not DER)", len(sig), err)
	}
	h := sha256.Sum256([]byte(proof[:i]))
	if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("the signature does not verify with the device key")
	}
}

// verifier records every proof a client sends to credsign and checks it
// independently of the server's code (go-jose and crypto/ecdsa, not
// internal/dpop): typ, alg, the embedded JWK (only the four public members,
// the key the test bound), the signature over the exact bytes sent, jti
// (16-64 characters, never seen before), htm, htu, iat and, when present,
// that the nonce is one credsign sent. It changes nothing: the request goes
// to the real API, which verifies the proof itself and answers; the test
// fails if credsign accepts a proof that this check refuses.
type verifier struct {
	t    *testing.T
	mu   sync.Mutex
	keys map[string]*ecdsa.PublicKey // device id -> its bound key
	// nonces credsign sent, and the last one; proofs seen (jti).
	nonces    map[string]bool
	lastNonce string
	jtis      map[string]bool
	log       []proofSeen
}

// proofSeen is one request and credsign's answer.
type proofSeen struct {
	auth   bool   // it carried an Authorization header
	status int    // credsign's answer
	reason string // credsign's reason for a refusal
	indep  string // "" when the independent check accepts the proof, else why not
	nonce  string // the proof's nonce claim
	last   string // the last nonce credsign sent before it
}

func newVerifier(t *testing.T) *verifier {
	return &verifier{t: t, keys: map[string]*ecdsa.PublicKey{}, nonces: map[string]bool{}, jtis: map[string]bool{}}
}

func (v *verifier) bind(id string, pub *ecdsa.PublicKey) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.keys[id] = pub
}

func (v *verifier) seen() []proofSeen {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]proofSeen(nil), v.log...)
}

func (v *verifier) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enrol := r.URL.Path == "/v1/enrol"
		if !strings.HasSuffix(r.URL.Path, "/credentials") && !enrol {
			next.ServeHTTP(w, r)
			return
		}
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/devices/"), "/credentials")
		if enrol {
			b, err := io.ReadAll(r.Body)
			var e struct {
				DeviceID string `json:"deviceId"`
			}
			if err != nil || json.Unmarshal(b, &e) != nil || e.DeviceID == "" {
				v.t.Errorf("enrolment request: %v %q", err, b)
			}
			id = e.DeviceID
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		v.mu.Lock()
		seen := proofSeen{auth: r.Header.Get("Authorization") != "", last: v.lastNonce}
		claims, key, indep := v.checkProof(r, id, enrol)
		seen.nonce, seen.indep = claims.Nonce, indep
		v.mu.Unlock()
		rw := &recordingWriter{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		var p struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(rw.body.Bytes(), &p)
		seen.status, seen.reason = rw.status, p.Reason
		v.mu.Lock()
		defer v.mu.Unlock()
		if n := w.Header().Get("DPoP-Nonce"); n != "" {
			v.nonces[n], v.lastNonce = true, n
		}
		if rw.status < 300 {
			if indep != "" {
				v.t.Errorf("credsign accepted a proof that the independent check refuses (%s)", indep)
			}
			v.jtis[claims.JTI] = true
			if enrol {
				v.keys[id] = key
			}
		}
		v.log = append(v.log, seen)
	})
}

type proofClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   *int64 `json:"iat"`
	Nonce string `json:"nonce"`
}

// checkProof verifies r's proof for device id (v.mu held): with its bound
// key, or for an enrolment with the proof's own key. It returns the
// proof's claims and key, and "" or why the proof is not good.
func (v *verifier) checkProof(r *http.Request, id string, enrol bool) (proofClaims, *ecdsa.PublicKey, string) {
	var c proofClaims
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return c, nil, "missing"
	}
	jws, err := jose.ParseSigned(proofs[0], []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return c, nil, "malformed"
	}
	h := jws.Signatures[0].Header
	if h.ExtraHeaders[jose.HeaderType] != "dpop+jwt" || h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() || h.KeyID != "" {
		return c, nil, "malformed"
	}
	// Only the members the spec names, and the embedded key is the bound one.
	var raw struct {
		JWK map[string]any `json:"jwk"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(strings.SplitN(proofs[0], ".", 2)[0])
	if err != nil || json.Unmarshal(hb, &raw) != nil || len(raw.JWK) != 4 {
		return c, nil, "malformed"
	}
	bound := v.keys[id]
	if embedded, ok := h.JSONWebKey.Key.(*ecdsa.PublicKey); enrol && ok {
		bound = embedded
	}
	if bound == nil || !bound.Equal(h.JSONWebKey.Key) {
		return c, nil, "unknown-key"
	}
	payload, err := jws.Verify(bound)
	if err != nil {
		return c, nil, "bad-signature"
	}
	if json.Unmarshal(payload, &c) != nil || c.IAT == nil || len(c.JTI) < 16 || len(c.JTI) > 64 {
		return c, nil, "malformed"
	}
	now := time.Now().Unix()
	switch {
	case c.HTM != r.Method:
		return c, nil, "wrong-method"
	case c.HTU != "https://"+r.Host+r.URL.Path:
		return c, nil, "wrong-url"
	case c.Nonce != "" && !v.nonces[c.Nonce]:
		return c, nil, "bad-nonce"
	case c.Nonce == "" && *c.IAT < now-60:
		return c, nil, "stale"
	case c.Nonce == "" && *c.IAT > now+5:
		return c, nil, "future"
	case v.jtis[c.JTI]:
		return c, nil, "replayed"
	}
	return c, bound, ""
}

// softHSM is a SoftHSM2 token in a temporary directory holding an EC P-256
// key generated inside it.
type softHSM struct {
	ref deviceKeyRef
	pub *ecdsa.PublicKey
}

// softHSMModule is where Debian's softhsm2 puts its PKCS#11 module.
var softHSMModules = []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"}

func newSoftHSM(t *testing.T) softHSM {
	t.Helper()
	module := ""
	for _, m := range softHSMModules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	for _, tool := range []string{"softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			module = ""
		}
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"); err != nil && module != "" {
		if out, err := exec.Command("openssl", "engine", "pkcs11").CombinedOutput(); err != nil {
			missing(t, "no OpenSSL pkcs11 engine (%s); apt-get install libengine-pkcs11-openssl", strings.TrimSpace(string(out)))
		}
	}
	if module == "" {
		missing(t, "no SoftHSM2 or pkcs11-tool; apt-get install softhsm2 opensc libengine-pkcs11-openssl")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+
		"\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pin := testutil.RandomHex(t, 8)
	run := func(name string, args ...string) string {
		t.Helper()
		c := exec.Command(name, args...)
		c.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, args[0], err, strings.ReplaceAll(string(out), pin, "[PIN]"))
		}
		return string(out)
	}
	run("softhsm2-util", "--init-token", "--free", "--label", "credsign-test", "--pin", pin, "--so-pin", testutil.RandomHex(t, 8))
	p11 := []string{"--module", module, "--token-label", "credsign-test", "--login", "--pin", pin}
	run("pkcs11-tool", append(p11, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "device", "--id", "01", "--usage-sign")...)
	// The private key was made in the token and cannot leave it: the token
	// reports CKA_EXTRACTABLE false (pkcs11-tool prints "extractable" for
	// CKA_EXTRACTABLE true, "never extractable" for CKA_NEVER_EXTRACTABLE),
	// CKA_SENSITIVE and CKA_LOCAL true. A control key generated with
	// --extractable shows that the listing tells the two apart.
	run("pkcs11-tool", append(p11, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "control", "--id", "02", "--extractable")...)
	access := func(label string) []string {
		t.Helper()
		out := run("pkcs11-tool", append(p11, "--list-objects", "--type", "privkey")...)
		current := ""
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "label:"); ok {
				current = strings.TrimSpace(v)
			}
			if a, ok := strings.CutPrefix(strings.TrimSpace(l), "Access:"); ok && current == label {
				return strings.Split(strings.ReplaceAll(strings.TrimSpace(a), " ", ""), ",")
			}
		}
		t.Fatalf("no Access line for %s in %q", label, out)
		return nil
	}
	if a := access("control"); !slices.Contains(a, "extractable") {
		t.Fatalf("the extractable control key lists %v", a)
	}
	if a := access("device"); slices.Contains(a, "extractable") || !slices.Contains(a, "neverextractable") ||
		!slices.Contains(a, "sensitive") || !slices.Contains(a, "local") {
		t.Fatalf("the device key is not a non-extractable, sensitive key made in the token: %v", a)
	}
	der := filepath.Join(dir, "device.pub.der")
	run("pkcs11-tool", "--module", module, "--token-label", "credsign-test", "--read-object", "--type", "pubkey", "--label", "device", "-o", der)
	b, err := os.ReadFile(der)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(b)
	if err != nil {
		t.Fatalf("the token's public key: %v", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("the token's public key is a %T", pub)
	}
	pinFile := testutil.WriteFile(t, "pin", []byte(pin+"\n"))
	return softHSM{pub: ec, ref: deviceKeyRef{spec: "pkcs11:token=credsign-test;object=device;type=private",
		env: []string{"SOFTHSM2_CONF=" + conf, "CREDSIGN_PKCS11_MODULE=" + module, "CREDSIGN_PKCS11_PIN_FILE=" + pinFile}}}
}

// keyCase is a client with a kind of key.
type keyCase struct {
	name string
	rt   keyRuntime
	key  func(t *testing.T) (deviceKeyRef, *ecdsa.PublicKey)
}

func fileKey(t *testing.T) (deviceKeyRef, *ecdsa.PublicKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return deviceKeyRef{spec: pemKeyFile(t, k, 0o600)}, &k.PublicKey
}

func tokenKey(t *testing.T) (deviceKeyRef, *ecdsa.PublicKey) {
	t.Helper()
	h := newSoftHSM(t)
	return h.ref, h.pub
}

var keyCases = []keyCase{
	{"python/file", keyRuntimes[0], fileKey},
	{"c/file", keyRuntimes[1], fileKey},
	{"c/softhsm2", keyRuntimes[1], tokenKey},
}

// jwkOf is the public JWK of a P-256 key, as POST /v1/devices/{id}/keys
// takes it.
func jwkOf(t *testing.T, pub *ecdsa.PublicKey) map[string]string {
	t.Helper()
	b, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"kty": "EC", "crv": "P-256", "x": b64(string(b[1:33])), "y": b64(string(b[33:]))}
}

// bindKey binds pub to device id through the API, as a provisioner does,
// and tells v; it returns the key's ID.
func bindKey(t *testing.T, srv *server, v *verifier, id string, pub *ecdsa.PublicKey) string {
	t.Helper()
	var k struct{ Kid string }
	srv.call("POST", "/v1/devices/"+id+"/keys", map[string]any{"jwk": jwkOf(t, pub), "name": "test"}, &k)
	if v != nil {
		v.bind(id, pub)
	}
	return k.Kid
}

// keyClouds are the devices the key tests connect through: a plain-TCP
// broker (Tencent) and a TLS one whose expiry is enforced (Azure).
var keyClouds = []device{devices[1], devices[3]}

// TestClientsWithDeviceKey: each client with a device key bound through
// POST /v1/devices/{id}/keys (no token file) fetches from the real server,
// which requires its nonce, connects, publishes and refreshes, on two
// clouds; every request carries one proof and no Authorization header;
// the first, without a nonce, is refused with use-nonce and retried once
// with the nonce of that answer, and each later proof carries the nonce of
// the answer before it.
func TestClientsWithDeviceKey(t *testing.T) {
	for _, kc := range keyCases {
		for _, d := range keyClouds {
			t.Run(kc.name+"/"+d.Cloud, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t, 90*time.Second)
				v := newVerifier(t)
				srv := startServer(t, serverOptions{wrap: v.wrap, requireNonce: true})
				r := srv.register(t, d, nil)
				ref, pub := kc.key(t)
				bindKey(t, srv, v, r.id, pub)
				s := settingsFor(srv, r, 6)
				s.tokenFile = ""
				p := startFor(t, kc.rt.command(t, s, ref), srv, r)
				testutil.WaitFor(ctx, t, "a refresh after messages", func() bool {
					_, _, n := count(r.emu)
					return n > 0 && len(issued(srv)) >= 2
				})
				testutil.WaitFor(ctx, t, "messages after the refresh", func() bool { _, _, n := count(r.emu); return n >= 3 })
				seen := v.seen()
				if len(seen) < 3 || seen[0].status != http.StatusUnauthorized || seen[0].reason != "use-nonce" || seen[0].nonce != "" {
					t.Fatalf("requests %+v; want a first proof without a nonce, refused with use-nonce", seen)
				}
				for i, s := range seen {
					if s.auth {
						t.Errorf("request %d carried an Authorization header beside its proof", i+1)
					}
					if i > 0 && (s.status != http.StatusOK || s.indep != "") {
						t.Errorf("request %d: credsign answered %d (%s), the independent check says %q", i+1, s.status, s.reason, s.indep)
					}
					if i > 0 && s.nonce != s.last {
						t.Errorf("request %d: nonce %q, want the last one credsign sent (%q)", i+1, s.nonce, s.last)
					}
				}
				if !strings.Contains(p.out.String(), "DPoP nonce") {
					t.Errorf("the client did not say why it signed again:\n%s", p.out.String())
				}
				healthy(t, p, srv, r)
			})
		}
	}
}

// TestClientsStopOnRefusedProof: a key removed from the device (DELETE
// /v1/devices/{id}/keys/{kid} while the client runs), or one that was never
// the device's, is refused by credsign with 401 unknown-key at the next
// fetch; the client stops with status 3, logs the reason and asks no more.
func TestClientsStopOnRefusedProof(t *testing.T) {
	for _, kc := range keyCases {
		for _, removed := range []bool{true, false} {
			name := kc.name + "/foreign"
			if removed {
				name = kc.name + "/removed"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t, 60*time.Second)
				v := newVerifier(t)
				srv := startServer(t, serverOptions{wrap: v.wrap})
				r := srv.register(t, devices[1], nil)
				ref, pub := kc.key(t)
				if !removed {
					foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
					if err != nil {
						t.Fatal(err)
					}
					pub = &foreign.PublicKey
				}
				kid := bindKey(t, srv, v, r.id, pub)
				s := settingsFor(srv, r, 6)
				s.tokenFile = ""
				p := startFor(t, kc.rt.command(t, s, ref), srv, r)
				before := 0
				if removed {
					testutil.WaitFor(ctx, t, "a first fetch", func() bool { return len(issued(srv)) == 1 })
					srv.call("DELETE", "/v1/devices/"+r.id+"/keys/"+kid, nil, nil)
					v.bind(r.id, nil)
					before = len(v.seen())
				}
				if p.exitStatus(ctx, t, "the client kept running after its proof was refused") != 3 || !strings.Contains(p.out.String(), "unknown-key") {
					t.Errorf("client ended with %v; want status 3 and the reason logged:\n%s", p.err, p.out.String())
				}
				after := v.seen()[before:]
				if len(after) != 1 || after[0].status != http.StatusUnauthorized || after[0].reason != "unknown-key" || after[0].indep != "unknown-key" {
					t.Errorf("requests after the key went: %+v; want one refused with unknown-key, not retried", after)
				}
				if want := map[bool]int{true: 1, false: 0}[removed]; len(issued(srv)) != want {
					t.Errorf("%d credentials issued, want %d", len(issued(srv)), want)
				}
			})
		}
	}
}

// TestClientsProofRefused: a proof a client printed (`proof POST URL`) is
// accepted once by credsign; the same proof again (replayed), one made for
// another device's URL or for another method is refused with 401 and the
// reason, and nothing is issued for them.
func TestClientsProofRefused(t *testing.T) {
	for _, kc := range keyCases {
		t.Run(kc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, serverOptions{})
			r := srv.register(t, devices[1], nil)
			ref, pub := kc.key(t)
			bindKey(t, srv, nil, r.id, pub)
			url := srv.url + "/v1/devices/" + r.id + "/credentials"
			proof := func(method, u string) string {
				t.Helper()
				c := kc.rt.command(t, settings{}, ref, "proof", method, u)
				var stderr strings.Builder
				c.Stderr = &stderr
				out, err := c.Output()
				if err != nil {
					t.Fatalf("proof: %v: %s", err, stderr.String())
				}
				return strings.TrimSpace(string(out))
			}
			send := func(p string) (int, string) {
				t.Helper()
				req, _ := http.NewRequest("POST", url, nil)
				req.Header.Set("DPoP", p)
				resp, err := srv.httpClient().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var pr struct{ Reason string }
				_ = json.NewDecoder(resp.Body).Decode(&pr)
				return resp.StatusCode, pr.Reason
			}
			good := proof("POST", url)
			if st, reason := send(good); st != http.StatusOK {
				t.Fatalf("a fresh proof: %d %s", st, reason)
			}
			for _, c := range []struct{ name, proof, reason string }{
				{"replayed", good, "replayed"},
				{"another device's URL", proof("POST", srv.url+"/v1/devices/lamp-other/credentials"), "wrong-url"},
				{"another host", proof("POST", "https://credsign.example/v1/devices/"+r.id+"/credentials"), "wrong-url"},
				{"another method", proof("GET", url), "wrong-method"},
			} {
				if st, reason := send(c.proof); st != http.StatusUnauthorized || reason != c.reason {
					t.Errorf("%s: %d %q, want 401 %q", c.name, st, reason, c.reason)
				}
			}
			if n := len(issued(srv)); n != 1 {
				t.Errorf("%d credentials issued, want the one", n)
			}
		})
	}
}

// TestClientsRefuseReadableKeyFile: a key file that others may read is a
// settings error (status 2) before anything is sent.
func TestClientsRefuseReadableKeyFile(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range keyRuntimes {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			ref := deviceKeyRef{spec: pemKeyFile(t, k, 0o644)}
			c := rt.command(t, settings{server: "https://127.0.0.1:1", device: "lamp", topic: "up", interval: 1}, ref)
			out, err := c.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "chmod 600") {
				t.Errorf("client ended with %v, output %q; want status 2 and a line asking for chmod 600", err, out)
			}
		})
	}
}

// TestPythonKeygen: keygen creates a P-256 key file readable by its owner
// only, prints the body that binds its public key (no private member), and
// leaves an existing key alone.
func TestPythonKeygen(t *testing.T) {
	rt := keyRuntimes[0]
	path := filepath.Join(t.TempDir(), "device-key.pem")
	ref := deviceKeyRef{spec: path}
	out, err := rt.command(t, settings{}, ref, "keygen").Output()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v (%v); want mode 0600", st, err)
	}
	var body struct {
		JWK map[string]string `json:"jwk"`
	}
	if err := json.Unmarshal(out, &body); err != nil || body.JWK["kty"] != "EC" || body.JWK["crv"] != "P-256" || len(body.JWK) != 4 {
		t.Fatalf("keygen printed %s (%v)", out, err)
	}
	b, _ := os.ReadFile(path)
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("the key file holds no PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(fmt.Sprintf(`{"kty":"EC","crv":"P-256","x":%q,"y":%q}`, body.JWK["x"], body.JWK["y"]))); err != nil ||
		!k.(*ecdsa.PrivateKey).PublicKey.Equal(jwk.Key) {
		t.Fatalf("the printed JWK is not the key's public part (%v)", err)
	}
	again, err := rt.command(t, settings{}, ref, "keygen").Output()
	if err != nil || string(again) != string(out) {
		t.Errorf("a second keygen printed %s (%v); want the same key", again, err)
	}
}

// TestClientsEnrolWithDeviceKey: each client enrols a new device with an
// enrolment token of an Azure group and a proof by its key ("enrol"): the
// real server binds the proof's key to the device and issues no token;
// the client then runs with that key alone, through the emulated hub.
func TestClientsEnrolWithDeviceKey(t *testing.T) {
	for _, kc := range keyCases {
		t.Run(kc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 60*time.Second)
			v := newVerifier(t)
			srv := startServer(t, serverOptions{wrap: v.wrap, requireNonce: true})
			d := devices[3] // Azure: device keys derived from a DPS group key
			e, params := emutest.Start(t, d.Device, nil)
			groupKey := base64.StdEncoding.EncodeToString([]byte(testutil.RandomHex(t, 32)))
			params["deviceId"] = "{deviceId}"
			srv.call("PUT", "/v1/groups/lamps", map[string]any{"cloud": "azure", "params": params, "secret": groupKey}, nil)
			const id = "lamp-enrolled"
			mac := hmac.New(sha256.New, testutil.Decode(t, base64.StdEncoding.DecodeString, groupKey))
			mac.Write([]byte(id))
			if err := e.AddDevice(map[string]string{"hubHost": "hub.azure-devices.net", "deviceId": id}, base64.StdEncoding.EncodeToString(mac.Sum(nil))); err != nil {
				t.Fatal(err)
			}
			var et struct{ Token string }
			srv.call("POST", "/v1/groups/lamps/enrolment-tokens", map[string]any{"maxUses": 1, "ttlSeconds": 3600}, &et)
			r := &registered{device: d, id: id, emu: e, caFile: testutil.WriteFile(t, "hub-ca.pem", e.CAPEM())}
			ref, pub := kc.key(t)
			s := settingsFor(srv, r, 0)
			s.tokenFile = ""
			enrol := kc.rt.command(t, s, ref, "enrol")
			enrol.Env = append(enrol.Env, "CREDSIGN_ENROLMENT_TOKEN_FILE="+testutil.WriteFile(t, "enrolment.token", []byte(et.Token+"\n")))
			out, err := enrol.CombinedOutput()
			if err != nil {
				t.Fatalf("enrol: %v\n%s", err, out)
			}
			if strings.Contains(string(out), et.Token) {
				t.Error("the client's output holds the enrolment token")
			}
			tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			kid := base64.RawURLEncoding.EncodeToString(tp)
			if want := "enrolled " + id + " with device key " + kid; !strings.Contains(string(out), want) {
				t.Errorf("enrol said %q; want %q", out, want)
			}
			var keys struct {
				Keys []struct{ Kid string }
			}
			srv.call("GET", "/v1/devices/"+id+"/keys", nil, &keys)
			if len(keys.Keys) != 1 || keys.Keys[0].Kid != kid {
				t.Fatalf("the device's keys %+v; want the client's %s", keys, kid)
			}
			var tokens struct {
				Tokens []json.RawMessage
			}
			srv.call("GET", "/v1/devices/"+id+"/tokens", nil, &tokens)
			if len(tokens.Tokens) != 0 {
				t.Errorf("the enrolment issued device tokens: %s", tokens.Tokens)
			}
			if seen := v.seen(); len(seen) != 2 || seen[0].reason != "use-nonce" || seen[1].status != http.StatusCreated || seen[1].indep != "" || !seen[1].auth {
				t.Errorf("enrolment requests %+v; want one refused for a nonce, then one accepted with the enrolment token", seen)
			}
			p := startFor(t, kc.rt.command(t, s, ref), srv, r)
			testutil.WaitFor(ctx, t, "a message", func() bool { _, _, n := count(r.emu); return n > 0 })
			healthy(t, p, srv, r)
		})
	}
}
