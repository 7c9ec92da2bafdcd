package dpop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"strconv"
	"testing"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// BenchmarkVerify is the server's cost of one proof: parse, signature,
// claims, URL, time and the jti cache (a fresh proof each, signed before
// the timer starts); BenchmarkECDSAVerify is the bare P-256 verification
// inside it.
func BenchmarkVerify(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v := newVerifier(b)
	proofs := make([]string, b.N)
	for i := range proofs {
		c := goodClaims()
		c["jti"] = "jti-" + strconv.Itoa(i) + "-AAAAAAAAAAAAAAAA"
		proofs[i] = testutil.SignES256(b, k, goodHeader(k), c)
	}
	b.ResetTimer()
	for i := range b.N {
		p, err := v.Verify(proofs[i], "GET", testURL, false)
		if err == nil {
			err = v.Accept(p)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkECDSAVerify(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sum := sha256.Sum256([]byte("input"))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, sum[:])
	for b.Loop() {
		if !ecdsa.VerifyASN1(&k.PublicKey, sum[:], sig) {
			b.Fatal("no")
		}
	}
}
