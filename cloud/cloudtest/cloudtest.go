// Package cloudtest holds what the tests of the clouds' packages share:
// signing through a registry of one cloud, and the standard library's
// HMAC to compute expected values independently of the recipes.
package cloudtest

import (
	"crypto/hmac"
	"hash"
	"testing"

	"github.com/credsign/credsign/cloud"
)

// MustSign signs req with reg, failing t on an error.
func MustSign(t testing.TB, reg *cloud.Registry, req cloud.Request) cloud.Credentials {
	t.Helper()
	c, err := reg.Sign(req)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return c
}

// HMAC is the HMAC of msg under key, computed with crypto/hmac.
func HMAC(newHash func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(newHash, key)
	m.Write(msg)
	return m.Sum(nil)
}
