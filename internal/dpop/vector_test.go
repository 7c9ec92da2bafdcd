package dpop

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// docVector reads the test vector of docs/devices.md: the "name: value"
// lines of the ```text block after the heading "A worked example and a
// test vector".
func docVector(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/devices.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(doc, []byte("### A worked example and a test vector"))
	if !ok {
		t.Fatal("docs/devices.md has no test vector section")
	}
	_, rest, ok = bytes.Cut(rest, []byte("```text\n"))
	if !ok {
		t.Fatal("the test vector section has no text block")
	}
	block, _, _ := bytes.Cut(rest, []byte("```"))
	v := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(block))
	sc.Buffer(nil, 1<<16)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if ok {
			v[name] = value
		}
	}
	for _, need := range []string{"private key d (hex)", "x", "y", "kid", "header", "claims", "signing input", "signature (r||s, base64url)", "proof"} {
		if v[need] == "" {
			t.Fatalf("the test vector has no %q line", need)
		}
	}
	return v
}

// rfc6979 signs hash with d on P-256 as RFC 6979 section 3.2 says
// (HMAC-SHA256 DRBG for k), written here from the RFC, not from a library.
func rfc6979(d *big.Int, hash []byte) (r, s *big.Int) {
	c := elliptic.P256()
	n := c.Params().N
	int2octets := func(x *big.Int) []byte { return x.FillBytes(make([]byte, 32)) }
	bits2octets := func(b []byte) []byte {
		z := new(big.Int).SetBytes(b)
		if z.Cmp(n) >= 0 {
			z.Sub(z, n)
		}
		return int2octets(z)
	}
	mac := func(k []byte, parts ...[]byte) []byte {
		m := hmac.New(sha256.New, k)
		for _, p := range parts {
			m.Write(p)
		}
		return m.Sum(nil)
	}
	v := bytes.Repeat([]byte{1}, 32)
	k := make([]byte, 32)
	x, h := int2octets(d), bits2octets(hash)
	k = mac(k, v, []byte{0}, x, h)
	v = mac(k, v)
	k = mac(k, v, []byte{1}, x, h)
	v = mac(k, v)
	for {
		v = mac(k, v)
		kk := new(big.Int).SetBytes(v)
		if kk.Sign() > 0 && kk.Cmp(n) < 0 {
			kG, err := ecdsa.ParseRawPrivateKey(c, int2octets(kk))
			if err != nil {
				panic(err)
			}
			pt, _ := kG.PublicKey.Bytes() // 0x04 || x || y
			r = new(big.Int).Mod(new(big.Int).SetBytes(pt[1:33]), n)
			if r.Sign() != 0 {
				e := new(big.Int).SetBytes(hash)
				s = new(big.Int).ModInverse(kk, n)
				s.Mul(s, new(big.Int).Add(e, new(big.Int).Mul(r, d)))
				s.Mod(s, n)
				if s.Sign() != 0 {
					return r, s
				}
			}
		}
		k = mac(k, v, []byte{0})
		v = mac(k, v)
	}
}

// TestRFC6979 checks rfc6979 against the RFC's own vector (A.2.5, P-256,
// SHA-256, message "sample").
func TestRFC6979(t *testing.T) {
	d, _ := new(big.Int).SetString("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", 16)
	sum := sha256.Sum256([]byte("sample"))
	r, s := rfc6979(d, sum[:])
	if hex.EncodeToString(r.Bytes()) != "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716" ||
		hex.EncodeToString(s.Bytes()) != "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8" {
		t.Fatalf("r %x s %x", r, s)
	}
}

// TestDocVector recomputes every line of the test vector in
// docs/devices.md from its key and its header and claims, and verifies the
// proof with this package (go-jose) and, when python3 has it, with
// Python's cryptography, an independent implementation.
func TestDocVector(t *testing.T) {
	v := docVector(t)
	d, ok := new(big.Int).SetString(v["private key d (hex)"], 16)
	if !ok {
		t.Fatal("the private key is not hex")
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d.FillBytes(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := priv.PublicKey.Bytes() // 0x04 || x || y
	if got := b64.EncodeToString(pt[1:33]); got != v["x"] {
		t.Errorf("x: the doc says %s, the key gives %s", v["x"], got)
	}
	if got := b64.EncodeToString(pt[33:]); got != v["y"] {
		t.Errorf("y: the doc says %s, the key gives %s", v["y"], got)
	}
	pub := &priv.PublicKey
	if kid, _ := Thumbprint(jose.JSONWebKey{Key: pub}); kid != v["kid"] {
		t.Errorf("kid: the doc says %s, RFC 7638 gives %s", v["kid"], kid)
	}
	if !strings.Contains(v["header"], `"x":"`+v["x"]+`","y":"`+v["y"]+`"`) {
		t.Errorf("the header's jwk is not the key")
	}
	input := b64.EncodeToString([]byte(v["header"])) + "." + b64.EncodeToString([]byte(v["claims"]))
	if input != v["signing input"] {
		t.Errorf("signing input: the doc says\n%s\nthe header and claims give\n%s", v["signing input"], input)
	}
	sum := sha256.Sum256([]byte(input))
	r, s := rfc6979(d, sum[:])
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	if got := b64.EncodeToString(sig); got != v["signature (r||s, base64url)"] {
		t.Errorf("signature: the doc says %s, RFC 6979 gives %s", v["signature (r||s, base64url)"], got)
	}
	if v["proof"] != input+"."+v["signature (r||s, base64url)"] {
		t.Errorf("proof is not the signing input, a dot and the signature")
	}
	// It verifies, for the request it names, at its iat.
	ver, err := NewVerifier(Config{NonceKey: make([]byte, 32), Now: func() time.Time { return time.Unix(1795000000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ver.Verify(v["proof"], "POST", "https://credsign.example/v1/devices/lamp-7/credentials", false)
	if err != nil || p.KeyID != v["kid"] {
		t.Fatalf("the doc's proof does not verify: %v", err)
	}
	// Independently: Python's cryptography verifies the signature with the
	// public key, and its own RFC 6979 signature is the doc's.
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3: the independent check is skipped")
	}
	script := `
import base64, sys
try:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature, decode_dss_signature
except ImportError:
    print("no-cryptography"); sys.exit(0)
d, x, y, inp, sig = sys.argv[1:6]
b = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b(x), "big"), int.from_bytes(b(y), "big"), ec.SECP256R1()).public_key()
raw = b(sig)
pub.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")), inp.encode(), ec.ECDSA(hashes.SHA256()))
k = ec.derive_private_key(int(d, 16), ec.SECP256R1())
r, s = decode_dss_signature(k.sign(inp.encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))
assert r.to_bytes(32, "big") + s.to_bytes(32, "big") == raw, "deterministic signature differs"
print("ok")
`
	out, err := exec.Command(py, "-c", script, v["private key d (hex)"], v["x"], v["y"], input, v["signature (r||s, base64url)"]).CombinedOutput()
	switch got := strings.TrimSpace(string(out)); {
	case err != nil:
		t.Fatalf("python cryptography: %v: %s", err, out)
	case got == "no-cryptography":
		t.Skip("python3 has no cryptography: the independent check is skipped")
	case got != "ok":
		t.Fatalf("python cryptography: %s", out)
	}
}
