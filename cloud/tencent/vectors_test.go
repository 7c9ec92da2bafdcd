package tencent_test

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/cloudtest"
	"github.com/credsign/credsign/cloud/tencent"
)

// TestTencentAlgorithm checks Tencent's recipe against the algorithm of the
// Tencent IoT Hub docs ("device connection with key authentication"). No vendor
// publishes a (PSK, username) -> password pair, so the expected value is the
// documented HMAC computed here with the standard library.
func TestTencentAlgorithm(t *testing.T) {
	psk := base64.StdEncoding.EncodeToString([]byte("tencent-psk-bytes"))
	for _, tt := range []struct{ method string }{{"hmacsha256"}, {"hmacsha1"}} {
		c := mustSign(t, cloud.Request{Cloud: "tencent", Params: map[string]any{"productId": "PID1234567", "deviceName": "dev1", "connId": "mYsTr", "signMethod": tt.method},
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

// Example signs a device of Tencent Cloud IoT Hub (docs/clouds.md, "tencent"), with its connId pinned.
func Example() {
	c, err := cloud.NewRegistry(tencent.Backend{}).Sign(cloud.Request{Cloud: "tencent", Params: map[string]any{"productId": "PID1234567", "deviceName": "dev1", "connId": "mYsTr"}, Secret: "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=", Now: time.Unix(1700000000, 0)})
	fmt.Println(c.Username, c.Password, err)
	// Output: PID1234567dev1;12010126;mYsTr;1700003600 a0128fef3a18be1ca25db196d08edbb247f9b70aa04531882d4602ed51245c70;hmacsha256 <nil>
}

// mustSign signs req with this cloud alone.
func mustSign(t *testing.T, req cloud.Request) cloud.Credentials {
	return cloudtest.MustSign(t, reg, req)
}

var reg = cloud.NewRegistry(tencent.Backend{})
