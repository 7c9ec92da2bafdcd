package cloud

import (
	"crypto/hmac"
	"hash"
)

// The names the tests of this package were written with, before the
// recipes moved to their own packages and these helpers were exported.
const (
	macSHA256 = MACSHA256
	macSHA1   = MACSHA1
	macMD5    = MACMD5
	macBlock  = MACBlock
)

var hmacPadded = HMACPadded

// hmacSum is the HMAC of msg under key, computed with crypto/hmac.
func hmacSum(newHash func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(newHash, key)
	m.Write(msg)
	return m.Sum(nil)
}
