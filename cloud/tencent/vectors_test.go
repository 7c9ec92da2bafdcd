package tencent_test

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/cloudtest"
	"github.com/credsign/credsign/cloud/tencent"
)

// The vendor's vectors, each with its source, signed through a registry of
// this cloud alone.

var reg = cloud.NewRegistry(tencent.New())

// Request is cloud.Request, as the vectors were written.
type Request = cloud.Request

func mustSign(t *testing.T, req Request) cloud.Credentials { return cloudtest.MustSign(t, reg, req) }

// TestTencentAlgorithm checks Tencent's recipe against the algorithm of the
// Tencent IoT Hub docs ("device connection with key authentication"). No vendor
// publishes a (PSK, username) -> password pair, so the expected value is the
// documented HMAC computed here with the standard library.
func TestTencentAlgorithm(t *testing.T) {
	psk := base64.StdEncoding.EncodeToString([]byte("tencent-psk-bytes"))
	for _, tt := range []struct{ method string }{{"hmacsha256"}, {"hmacsha1"}} {
		c := mustSign(t, Request{Cloud: "tencent", Params: map[string]any{"productId": "PID1234567", "deviceName": "dev1", "connId": "mYsTr", "signMethod": tt.method},
			Secret: psk, Now: time.Unix(1700000000, 5e8), TTL: time.Hour})
		wantUser := "PID1234567dev1;12010126;mYsTr;1700003600"
		newHash := sha256.New
		if tt.method == "hmacsha1" {
			newHash = sha1.New
		}
		wantPass := hex.EncodeToString(hmacSum(newHash, []byte("tencent-psk-bytes"), []byte(wantUser))) + ";" + tt.method
		if c.ClientID != "PID1234567dev1" || c.Username != wantUser || c.Password != wantPass {
			t.Errorf("%s: got %q %q %q, want %q %q", tt.method, c.ClientID, c.Username, c.Password, wantUser, wantPass)
		}
		if c.Host != "PID1234567.iotcloud.tencentdevices.com" || c.Port != 1883 || c.TLS || !c.ExpiryEnforced || c.ExpiresAt.Unix() != 1700003600 {
			t.Errorf("%s: address or expiry wrong: %+v", tt.method, c)
		}
	}
}

// hmacSum is cloudtest.HMAC, as the test was written.
var hmacSum = cloudtest.HMAC
