package huawei_test

import (
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/cloudtest"
	"github.com/credsign/credsign/cloud/huawei"
)

// The vendor's vectors, each with its source, signed through a registry of
// this cloud alone.

var reg = cloud.NewRegistry(huawei.New())

// Request is cloud.Request, as the vectors were written.
type Request = cloud.Request

func mustSign(t *testing.T, req Request) cloud.Credentials { return cloudtest.MustSign(t, reg, req) }

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
		c := mustSign(t, Request{Cloud: "huawei", Params: map[string]any{"deviceId": "dev_1"}, Secret: "12345678", Now: now})
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
	c := mustSign(t, Request{Cloud: "huawei", Params: map[string]any{"deviceId": "d", "checkTimestamp": false, "tls": false},
		Secret: "12345678", Now: time.Date(2025, 4, 14, 1, 0, 0, 0, time.UTC)})
	if c.ClientID != "d_0_0_2025041401" || c.Password != want || c.ExpiresAt != nil || c.ExpiryEnforced || c.Port != 1883 || c.TLS {
		t.Errorf("checkTimestamp=false, tls=false: got %+v", c)
	}
}
