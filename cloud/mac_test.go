package cloud

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"testing"
)

var macHashes = []struct {
	alg  MACAlg
	name string
	h    func() hash.Hash
}{{macSHA256, "sha256", sha256.New}, {macSHA1, "sha1", sha1.New}, {macMD5, "md5", md5.New}}

func checkHMACPadded(t *testing.T, key, msg []byte) {
	t.Helper()
	for _, h := range macHashes {
		buf := append(make([]byte, macBlock), msg...)
		got := hmacPadded(h.alg, key, buf, []byte("prefix"))
		want := append([]byte("prefix"), hmacSum(h.h, key, msg)...)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: hmacPadded(key %d bytes, msg %d bytes) = %x, crypto/hmac says %x", h.name, len(key), len(msg), got, want)
		}
	}
}

// TestHMACPaddedMatchesCryptoHMAC compares with crypto/hmac on keys shorter
// than, equal to and longer than the block, and messages of many lengths.
func TestHMACPaddedMatchesCryptoHMAC(t *testing.T) {
	for _, kl := range []int{0, 1, 10, 32, 63, 64, 65, 200} {
		for _, ml := range []int{0, 1, 55, 56, 64, 119, 120, 300} {
			checkHMACPadded(t, bytes.Repeat([]byte{byte(kl + 1)}, kl), bytes.Repeat([]byte{byte(ml + 7)}, ml))
		}
	}
}

func FuzzHMACPadded(f *testing.F) {
	f.Add([]byte("key"), []byte("The quick brown fox jumps over the lazy dog"))
	f.Add(bytes.Repeat([]byte{1}, 100), []byte{})
	f.Fuzz(func(t *testing.T, key, msg []byte) { checkHMACPadded(t, key, msg) })
}
