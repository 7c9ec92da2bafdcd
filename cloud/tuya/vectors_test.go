package tuya_test

import (
	"fmt"
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
