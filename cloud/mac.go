package signing

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
)

// macAlg is a hash the clouds use in their HMACs.
type macAlg uint8

const (
	macSHA256 macAlg = iota
	macSHA1
	macMD5
)

// macBlock is the block size of SHA-256, SHA-1 and MD5 alike.
const macBlock = 64

// sum appends the hash of data to dst.
func (a macAlg) sum(dst, data []byte) []byte {
	switch a {
	case macSHA1:
		s := sha1.Sum(data)
		return append(dst, s[:]...)
	case macMD5:
		s := md5.Sum(data)
		return append(dst, s[:]...)
	}
	s := sha256.Sum256(data)
	return append(dst, s[:]...)
}

// hmacPadded appends HMAC(key, msg) (RFC 2104) to dst, where buf is
// macBlock bytes of room followed by msg; it overwrites that room.
//
// crypto/hmac computes the same value (TestHMACPaddedMatchesCryptoHMAC and
// FuzzHMACPadded check it), but its hash.Hash API allocates two digests and
// both pads on every call, which costs more than the recipes' own work. With
// the message already in one buffer, the fixed-size Sum functions need no
// allocation at all.
func hmacPadded(a macAlg, key, buf, dst []byte) []byte {
	var k [macBlock]byte
	if len(key) > macBlock {
		a.sum(k[:0], key)
	} else {
		copy(k[:], key)
	}
	var outer [macBlock + sha256.Size]byte
	for i := range macBlock {
		buf[i] = k[i] ^ 0x36
		outer[i] = k[i] ^ 0x5c
	}
	inner := a.sum(outer[:macBlock], buf)
	return a.sum(dst, inner)
}
