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

// TuyaDevices are the device ids and secrets on which the tests of Tuya's
// two protocols (cloud/tuya, cloud/tuyalegacy) compare credsign with
// their ports of the official SDKs: inputs of credsign's own, 16
// characters of secret as the Tuya console issues.
var TuyaDevices = []struct{ ID, Secret string }{
	{"bf3a9c0e2d41f7a8c5xq1z", "0f1e2d3c4b5a6978"},
	{"6c12ab34cd56ef7890abcd", "Zz9-Yy8_Xx7.Ww6~"},
}
