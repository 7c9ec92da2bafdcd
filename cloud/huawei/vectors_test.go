package huawei_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/cloudtest"
	"github.com/credsign/credsign/cloud/huawei"
)

// TestHuaweiVendorVector checks the published Huawei IoTDA vector, from any time zone.
func TestHuaweiVendorVector(t *testing.T) {
	// Source: Huawei Cloud IoTDA docs, MQTT CONNECT authentication (docs/clouds.md huawei vector):
	// secret 12345678, ts 2025041401 -> c75150e6...
	const want = "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
	shanghai := time.FixedZone("UTC+8", 8*3600)
	for _, now := range []time.Time{
		time.Date(2025, 4, 14, 1, 0, 0, 0, time.UTC),
		time.Date(2025, 4, 14, 1, 59, 59, 999e6, time.UTC),
		time.Date(2025, 4, 14, 9, 30, 0, 0, shanghai), // 01:30 UTC
	} {
		c := mustSign(t, cloud.Request{Cloud: "huawei", Params: map[string]any{"deviceId": "dev_1"}, Secret: "12345678", Now: now})
		if c.Password != want {
			t.Errorf("now %s: password = %s, want %s", now, c.Password, want)
		}
		if c.ClientID != "dev_1_0_1_2025041401" || c.Username != "dev_1" {
			t.Errorf("now %s: clientId, username = %q, %q", now, c.ClientID, c.Username)
		}
		end := time.Date(2025, 4, 14, 2, 0, 0, 0, time.UTC)
		if c.ExpiresAt == nil || !c.ExpiresAt.Equal(end) || !c.ExpiryEnforced {
			t.Errorf("now %s: expiresAt %v enforced %v, want %s true", now, c.ExpiresAt, c.ExpiryEnforced, end)
		}
	}
	c := mustSign(t, cloud.Request{Cloud: "huawei", Params: map[string]any{"deviceId": "d", "checkTimestamp": false, "tls": false},
		Secret: "12345678", Now: time.Date(2025, 4, 14, 1, 0, 0, 0, time.UTC)})
	if c.ClientID != "d_0_0_2025041401" || c.Password != want || c.ExpiresAt != nil || c.ExpiryEnforced || c.Port != 1883 || c.TLS {
		t.Errorf("checkTimestamp=false, tls=false: got %+v", c)
	}
}

// Example signs a device of Huawei Cloud IoTDA (docs/clouds.md, "huawei").
func Example() {
	c, err := cloud.NewRegistry(huawei.Backend{}).Sign(cloud.Request{Cloud: "huawei", Params: map[string]any{"deviceId": "dev_1"}, Secret: "12345678", Now: time.Date(2019, 12, 4, 9, 30, 0, 0, time.UTC)})
	fmt.Println(c.ClientID, c.Username, c.Password, c.ExpiresAt, err)
	// Output: dev_1_0_1_2019120409 dev_1 dc089b6d4b3adbe3265343ed55f6aeae096b87c81c563a3d88b208bf06820e91 2019-12-04 10:00:00 +0000 UTC <nil>
}

// mustSign signs req with this cloud alone.
func mustSign(t *testing.T, req cloud.Request) cloud.Credentials {
	return cloudtest.MustSign(t, reg, req)
}

var reg = cloud.NewRegistry(huawei.Backend{})
