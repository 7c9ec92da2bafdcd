package baidu_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/baidu"
	"github.com/credsign/credsign/cloud/cloudtest"
)

// TestBaiduVendorVectors checks Baidu's published password vector.
func TestBaiduVendorVectors(t *testing.T) {
	// Source: Baidu AI Cloud IoT Core docs, "通过MQTT连接及收发消息" password
	// example, as in docs/clouds.md: abcd123 / mydevice / ImSeCrEt0I1M2jkl / 1583826857 / MD5.
	c := mustSign(t, cloud.Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"},
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

// Example signs Baidu's documented example (docs/clouds.md, "baidu").
func Example() {
	c, err := cloud.NewRegistry(baidu.Backend{}).Sign(cloud.Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"}, Secret: "ImSeCrEt0I1M2jkl", Now: time.Unix(1583826857, 0)})
	fmt.Println(c.Username, c.Password, c.Port, err)
	// Output: thingidp@abcd123|mydevice|1583826857|MD5 7f0e63d2c6e122100edde19e34e7df5b 1884 <nil>
}

// mustSign signs req with this cloud alone.
func mustSign(t *testing.T, req cloud.Request) cloud.Credentials {
	return cloudtest.MustSign(t, reg, req)
}

var reg = cloud.NewRegistry(baidu.Backend{})
