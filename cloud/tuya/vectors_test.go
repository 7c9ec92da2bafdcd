package tuya_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/cloudtest"
	"github.com/credsign/credsign/cloud/tuya"
)

// TestTuyaVendorVectors checks Tuya's vector and the documented layout.
func TestTuyaVendorVectors(t *testing.T) {
	// Source: docs/clouds.md tuya vector (deviceId 6c95875d0f5ba69607nzfl,
	// secret fb803786602df760, timestamp 1700000000); ClientId and username
	// layout: Tuya "Open MQTT Protocol" (developer.tuya.com, id=Kb3nzwbv28sgk).
	c := mustSign(t, cloud.Request{Cloud: "tuya", Params: map[string]any{"deviceId": "6c95875d0f5ba69607nzfl"},
		Secret: "fb803786602df760", Now: time.Unix(1700000000, 0)})
	if c.Password != "1560ae9a5d22067b47f6e98347c6e408fd9e9b63cd6c1f354fedbe452b0375db" {
		t.Errorf("password = %s", c.Password)
	}
	if c.ClientID != "tuyalink_6c95875d0f5ba69607nzfl" ||
		c.Username != "6c95875d0f5ba69607nzfl|signMethod=hmacSha256,timestamp=1700000000,secureMode=1,accessType=1" {
		t.Errorf("clientId, username = %q, %q", c.ClientID, c.Username)
	}
	if c.Host != "m1.tuyacn.com" || c.Port != 8883 || !c.TLS || c.ExpiresAt != nil || c.ExpiryEnforced {
		t.Errorf("address or expiry: %+v", c)
	}
	if c.Topics.Telemetry != "tylink/6c95875d0f5ba69607nzfl/thing/property/report" || c.Topics.Commands != "tylink/6c95875d0f5ba69607nzfl/thing/property/set" {
		t.Errorf("topics = %+v", c.Topics)
	}
}

// TestTuyaAsOfficialSDKs ports the official SDK's signing function and
// compares it byte for byte with credsign's, on inputs of its own:
// tuya/tuya-connect-kit-for-mqtt-embedded-c, branch iotcore-develop
// (bdfb4ac2), src/tuyalink_core.c, tuya_mqtt_auth_signature_calculate:
// username "%s|signMethod=hmacSha256,timestamp=%d,secureMode=1,accessType=1",
// ClientId "tuyalink_%s", password "%02x" of HMAC-SHA256 keyed with the
// secret's first 16 bytes over
// "deviceId=%s,timestamp=%d,secureMode=1,accessType=1". credsign takes
// only 16-character secrets (where that and the docs' whole-secret key
// agree) and refuses others. (tuyalegacy's half of this test is
// TestTuyaLegacyAsOfficialSDKs in cloud/tuyalegacy.)
func TestTuyaAsOfficialSDKs(t *testing.T) {
	now := time.Unix(1765000123, 0)
	for _, tt := range cloudtest.TuyaDevices {
		c := mustSign(t, cloud.Request{Cloud: "tuya", Params: map[string]any{"deviceId": tt.ID}, Secret: tt.Secret, Now: now})
		ts := int32(now.Unix())
		m := hmac.New(sha256.New, []byte(tt.Secret)[:16])
		m.Write([]byte(fmt.Sprintf("deviceId=%s,timestamp=%d,secureMode=1,accessType=1", tt.ID, ts)))
		var pw strings.Builder
		for _, b := range m.Sum(nil) {
			fmt.Fprintf(&pw, "%02x", b)
		}
		if want := fmt.Sprintf("%s|signMethod=hmacSha256,timestamp=%d,secureMode=1,accessType=1", tt.ID, ts); c.Username != want {
			t.Errorf("username %s, want %s", c.Username, want)
		}
		if c.ClientID != "tuyalink_"+tt.ID || c.Password != pw.String() {
			t.Errorf("clientId, password = %s, %s; want tuyalink_%s, %s", c.ClientID, c.Password, tt.ID, pw.String())
		}
	}
	for _, bad := range []string{"fb803786602df76", "fb803786602df7600", "fb803786602df760fb803786602df760"} {
		if _, err := reg.Sign(cloud.Request{Cloud: "tuya", Params: map[string]any{"deviceId": "d1"}, Secret: bad, Now: now}); !cloud.IsInvalid(err) || strings.Contains(err.Error(), bad) {
			t.Errorf("tuya secret of %d characters: err = %v, want invalid without the secret", len(bad), err)
		}
	}
}

// Example signs Tuya's documented example (docs/clouds.md, "tuya").
func Example() {
	c, err := cloud.NewRegistry(tuya.Backend{}).Sign(cloud.Request{Cloud: "tuya", Params: map[string]any{"deviceId": "6c95875d0f5ba69607nzfl"}, Secret: "fb803786602df760", Now: time.Unix(1607635284, 0)})
	fmt.Println(c.ClientID, c.Username, c.Password, err)
	// Output: tuyalink_6c95875d0f5ba69607nzfl 6c95875d0f5ba69607nzfl|signMethod=hmacSha256,timestamp=1607635284,secureMode=1,accessType=1 9625b57c76e594181b8696c9a7c54d51e3f595c3672991832ed65d89819aae81 <nil>
}

// mustSign signs req with this cloud alone.
func mustSign(t *testing.T, req cloud.Request) cloud.Credentials {
	return cloudtest.MustSign(t, reg, req)
}

var reg = cloud.NewRegistry(tuya.Backend{})
