package cloud

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
)

// MACAlg is a hash the clouds use in their HMACs.
type MACAlg uint8

// The hashes of MACAlg.
const (
	MACSHA256 MACAlg = iota
	MACSHA1
	MACMD5
)

// MACBlock is the block size of SHA-256, SHA-1 and MD5 alike.
const MACBlock = 64

// Sum appends the hash of data to dst.
func (a MACAlg) Sum(dst, data []byte) []byte {
	switch a {
	case MACSHA1:
		s := sha1.Sum(data)
		return append(dst, s[:]...)
	case MACMD5:
		s := md5.Sum(data)
		return append(dst, s[:]...)
	}
	s := sha256.Sum256(data)
	return append(dst, s[:]...)
}

// HMACPadded appends HMAC(key, msg) (RFC 2104) to dst, where buf is
// MACBlock bytes of room followed by msg; it overwrites that room.
//
// crypto/hmac computes the same value (TestHMACPaddedMatchesCryptoHMAC and
// FuzzHMACPadded check it), but its hash.Hash API allocates two digests and
// both pads on every call, which costs more than the recipes' own work. With
// the message already in one buffer, the fixed-size Sum functions need no
// allocation at all.
func HMACPadded(a MACAlg, key, buf, dst []byte) []byte {
	var k [MACBlock]byte
	if len(key) > MACBlock {
		a.Sum(k[:0], key)
	} else {
		copy(k[:], key)
	}
	var outer [MACBlock + sha256.Size]byte
	for i := range MACBlock {
		buf[i] = k[i] ^ 0x36
		outer[i] = k[i] ^ 0x5c
	}
	inner := a.Sum(outer[:MACBlock], buf)
	return a.Sum(dst, inner)
}

// HMACName names the HMAC of an aliyun or tencent sign method
// ("hmacsha256", "hmacsha1", "hmacmd5"), HMAC-SHA256 by default.
func HMACName(method string) string {
	switch method {
	case "hmacsha1":
		return "HMAC-SHA1"
	case "hmacmd5":
		return "HMAC-MD5"
	}
	return "HMAC-SHA256"
}

// IsAlnum reports whether c is an ASCII letter or digit.
func IsAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
