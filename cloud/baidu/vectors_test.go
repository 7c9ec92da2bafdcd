package baidu_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/baidu"
	"github.com/credsign/credsign/cloud/cloudtest"
)

// TestBaiduVendorVectors checks Baidu's published password vectors, the
// window Baidu documents and the port and transport of Baidu's SDK.
func TestBaiduVendorVectors(t *testing.T) {
	// Source: Baidu AI Cloud IoT Core docs, "通过MQTT连接及收发消息"
	// (cloud.baidu.com/doc/IoTCore/s/Akck4811r) password example:
	// abcd123 / mydevice / ImSeCrEt0I1M2jkl / 1583826857 / MD5, and the
	// same device "不使用" (without) a timestamp: username
	// thingidp@abcd123|mydevice|0|MD5, string mydevice&0&MD5ImSeCrEt0I1M2jkl,
	// password 22bc75231495220c7a2202fe15f7d286.
	now := time.Unix(1583826857, 0)
	c := mustSign(t, cloud.Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"},
		Secret: "ImSeCrEt0I1M2jkl", Now: now})
	if c.Password != "7f0e63d2c6e122100edde19e34e7df5b" {
		t.Errorf("password = %s, want 7f0e63d2c6e122100edde19e34e7df5b", c.Password)
	}
	if c.Username != "thingidp@abcd123|mydevice|1583826857|MD5" || c.ClientID != "mydevice" {
		t.Errorf("username, clientId = %q, %q", c.Username, c.ClientID)
	}
	// The same page: "时间戳会与服务器时间判比，最大误差允许10min" (at most 10
	// minutes from the server's time). Port and transport: baidu/iotcore-sdk-java
	// MqttConfigFactory signs in on tcp://{iotCoreId}.iot.gz.baidubce.com:1883
	// (1884 is its ssl:// port for client certificates). Before this, credsign
	// defaulted to TLS on 1884 and reported no expiry, which neither source shows.
	if c.Host != "abcd123.iot.gz.baidubce.com" || c.Port != 1883 || c.TLS || c.ExpiresAt == nil || !c.ExpiresAt.Equal(now.Add(10*time.Minute)) || !c.ExpiryEnforced {
		t.Errorf("address or expiry: %+v", c)
	}
	if want := now.Add(400 * time.Second); !c.RefreshAfter.Equal(want) {
		t.Errorf("refreshAfter = %s, want two thirds of the 10 minutes, %s", c.RefreshAfter, want)
	}
	if _, err := reg.Sign(cloud.Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"},
		Secret: "ImSeCrEt0I1M2jkl", Now: now, TTL: 11 * time.Minute}); !cloud.IsInvalid(err) {
		t.Errorf("ttl 11m: err = %v, want invalid (Baidu accepts the timestamp for 10 minutes)", err)
	}
	z := mustSign(t, cloud.Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice", "checkTimestamp": false, "tls": true},
		Secret: "ImSeCrEt0I1M2jkl", Now: now, TTL: 24 * time.Hour})
	if z.Username != "thingidp@abcd123|mydevice|0|MD5" || z.Password != "22bc75231495220c7a2202fe15f7d286" || z.ExpiresAt != nil || z.ExpiryEnforced {
		t.Errorf("timestamp 0: %+v", z)
	}
	if z.Port != 1884 || !z.TLS {
		t.Errorf("tls=true: port %d tls %v, want 1884 with TLS", z.Port, z.TLS)
	}
}

// Example signs Baidu's documented example (docs/clouds.md, "baidu").
func Example() {
	c, err := cloud.NewRegistry(baidu.Backend{}).Sign(cloud.Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"}, Secret: "ImSeCrEt0I1M2jkl", Now: time.Unix(1583826857, 0)})
	fmt.Println(c.Username, c.Password, c.Port, err)
	// Output: thingidp@abcd123|mydevice|1583826857|MD5 7f0e63d2c6e122100edde19e34e7df5b 1883 <nil>
}

// mustSign signs req with this cloud alone.
func mustSign(t *testing.T, req cloud.Request) cloud.Credentials {
	return cloudtest.MustSign(t, reg, req)
}

var reg = cloud.NewRegistry(baidu.Backend{})
