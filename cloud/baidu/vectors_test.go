package baidu_test

import (
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/baidu"
	"github.com/credsign/credsign/cloud/cloudtest"
)

// The vendor's vectors, each with its source, signed through a registry of
// this cloud alone.

var reg = cloud.NewRegistry(baidu.New())

// Request is cloud.Request, as the vectors were written.
type Request = cloud.Request

func mustSign(t *testing.T, req Request) cloud.Credentials { return cloudtest.MustSign(t, reg, req) }

// TestBaiduVendorVectors checks Baidu's published password vector.
func TestBaiduVendorVectors(t *testing.T) {
	// Source: Baidu AI Cloud IoT Core docs, "通过MQTT连接及收发消息" password
	// example, as in docs/clouds.md: abcd123 / mydevice / ImSeCrEt0I1M2jkl / 1583826857 / MD5.
	c := mustSign(t, Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"},
		Secret: "ImSeCrEt0I1M2jkl", Now: time.Unix(1583826857, 0)})
	if c.Password != "7f0e63d2c6e122100edde19e34e7df5b" {
		t.Errorf("password = %s, want 7f0e63d2c6e122100edde19e34e7df5b", c.Password)
	}
	if c.Username != "thingidp@abcd123|mydevice|1583826857|MD5" || c.ClientID != "mydevice" {
		t.Errorf("username, clientId = %q, %q", c.Username, c.ClientID)
	}
	if c.Host != "abcd123.iot.gz.baidubce.com" || c.Port != 1884 || !c.TLS || c.ExpiresAt != nil || c.ExpiryEnforced {
		t.Errorf("address or expiry: %+v", c)
	}
}
