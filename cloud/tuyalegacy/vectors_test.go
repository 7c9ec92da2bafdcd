package tuyalegacy_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/cloudtest"
	"github.com/credsign/credsign/cloud/tuyalegacy"
)

// TestTuyaLegacyAsOfficialSDKs ports the official SDKs' signing function
// and compares it byte for byte with credsign's, on inputs of its own:
// tuya/tuyaos-link-sdk-python tuyalinksdk/mqtt_builder.py login_sign:
// ClientId = username = devId, password = md5(signkey).hexdigest()[8:8+8*2]
// (signkey = secKey), topics smart/device/in|out/{devId}; the same as
// tuya-connect-kit's src/mqtt_service.c tuya_mqtt_signature_tool.
func TestTuyaLegacyAsOfficialSDKs(t *testing.T) {
	now := time.Unix(1765000123, 0)
	for _, tt := range cloudtest.TuyaDevices {
		l := mustSign(t, cloud.Request{Cloud: "tuyalegacy", Params: map[string]any{"deviceId": tt.ID}, Secret: tt.Secret, Now: now})
		sum := md5.Sum([]byte(tt.Secret))
		if want := hex.EncodeToString(sum[:])[8 : 8+8*2]; l.ClientID != tt.ID || l.Username != tt.ID || l.Password != want {
			t.Errorf("tuyalegacy = %q %q %q, want %q %q %q", l.ClientID, l.Username, l.Password, tt.ID, tt.ID, want)
		}
		if l.Topics.Telemetry != "smart/device/out/"+tt.ID || l.Topics.Commands != "smart/device/in/"+tt.ID || l.Host != "m2.tuyacn.com" || l.Port != 8883 || !l.TLS || l.ExpiresAt != nil {
			t.Errorf("tuyalegacy address, topics or expiry: %+v", l)
		}
	}
	// Vectors derived by running the Python SDK's own expression,
	// md5(signkey).hexdigest()[8:8+8*2], on these secKeys (no vendor
	// publishes one).
	for secKey, want := range map[string]string{"0123456789abcdef": "61035123906e58e0", "a1b2c3d4e5f6a7b8": "0a8beee19351c1c8"} {
		if l := mustSign(t, cloud.Request{Cloud: "tuyalegacy", Params: map[string]any{"deviceId": "d1"}, Secret: secKey, Now: now}); l.Password != want {
			t.Errorf("tuyalegacy %s: password %s, want %s", secKey, l.Password, want)
		}
	}
}

// Example signs the first secKey of TestTuyaLegacyAsOfficialSDKs, whose
// password is the Python SDK's md5(signkey).hexdigest()[8:24]
// (docs/clouds.md, "tuyalegacy").
func Example() {
	c, err := cloud.NewRegistry(tuyalegacy.Backend{}).Sign(cloud.Request{Cloud: "tuyalegacy", Params: map[string]any{"deviceId": "d1"}, Secret: "0123456789abcdef", Now: time.Unix(1765000123, 0)})
	fmt.Println(c.ClientID, c.Username, c.Password, c.Host, c.Topics.Telemetry, err)
	// Output: d1 d1 61035123906e58e0 m2.tuyacn.com smart/device/out/d1 <nil>
}

// mustSign signs req with this cloud alone.
func mustSign(t *testing.T, req cloud.Request) cloud.Credentials {
	return cloudtest.MustSign(t, reg, req)
}

var reg = cloud.NewRegistry(tuyalegacy.Backend{})
