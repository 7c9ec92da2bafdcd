package clouds

import (
	"testing"
	"time"
)

// TestOneNETVendorVectors checks OneNET's published token vector.
func TestOneNETVendorVectors(t *testing.T) {
	// Source: OneNET Studio docs, "Token algorithm" (token算法) example, as in
	// docs/clouds.md: key KuF3NT..., res products/123123, et 1537255523, sha1.
	const want = "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D"
	c := mustSign(t, Request{Cloud: "onenet", Params: map[string]any{"productId": "123123", "deviceName": "dev1", "signMethod": "sha1", "keyScope": "product"},
		Secret: "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw=", Now: time.Unix(1537255523-3600, 0), TTL: time.Hour})
	if c.Password != want {
		t.Errorf("password = %s\nwant       %s", c.Password, want)
	}
	if c.ClientID != "dev1" || c.Username != "123123" || c.Host != "mqtts.heclouds.com" || c.Port != 1883 || c.TLS {
		t.Errorf("clientId, username, address = %q %q %s:%d tls=%v", c.ClientID, c.Username, c.Host, c.Port, c.TLS)
	}
	if !c.ExpiryEnforced || c.ExpiresAt == nil || c.ExpiresAt.Unix() != 1537255523 {
		t.Errorf("expiry = %v enforced %v, want et 1537255523 enforced", c.ExpiresAt, c.ExpiryEnforced)
	}
	if c.Topics.Telemetry != "$sys/123123/dev1/thing/property/post" || c.Topics.Commands != "$sys/123123/dev1/thing/property/set" {
		t.Errorf("topics = %+v", c.Topics)
	}

	// Source: ALIENTEK (正点原子) "lwIP+OneNET+MQTT" demo, lwip_demo.h: a token
	// made with OneNET's token tool for product 8q4Ad1z2jn and its access key.
	c = mustSign(t, Request{Cloud: "onenet", Params: map[string]any{"productId": "8q4Ad1z2jn", "deviceName": "MY_MQTT", "signMethod": "sha1", "keyScope": "product"},
		Secret: "s6W5Qf29VVc1gaUfA5VBt+XZbyPBC/Wpk7Ntf7vNE0E=", Now: time.Unix(1893456000-600, 0), TTL: 10 * time.Minute})
	if want := "version=2018-10-31&res=products%2F8q4Ad1z2jn&et=1893456000&method=sha1&sign=vw2LFxZMrYawijQhxQRSJ3aC4CQ%3D"; c.Password != want {
		t.Errorf("password = %s\nwant       %s", c.Password, want)
	}
}

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

// TestTuyaVendorVectors checks Tuya's vector and the documented layout.
func TestTuyaVendorVectors(t *testing.T) {
	// Source: docs/clouds.md tuya vector (deviceId 6c95875d0f5ba69607nzfl,
	// secret fb803786602df760, timestamp 1700000000); ClientId and username
	// layout: Tuya "Open MQTT Protocol" (developer.tuya.com, id=Kb3nzwbv28sgk).
	c := mustSign(t, Request{Cloud: "tuya", Params: map[string]any{"deviceId": "6c95875d0f5ba69607nzfl"},
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

// TestDefaultHosts: each cloud's broker host is the host param when it is
// set, else the cloud's default built from its params (docs/clouds.md).
func TestDefaultHosts(t *testing.T) {
	tests := []struct {
		cloud string
		kv    []any
		want  string
	}{
		{"aliyun", nil, "pk.iot-as-mqtt.cn-shanghai.aliyuncs.com"},
		{"aliyun", []any{"regionId", "cn-beijing"}, "pk.iot-as-mqtt.cn-beijing.aliyuncs.com"},
		{"aliyun", []any{"instanceId", "iot-06z00"}, "iot-06z00.mqtt.iothub.aliyuncs.com"},
		{"aliyun", []any{"instanceId", "iot-06z00", "host", "broker.example"}, "broker.example"},
		{"tencent", nil, "PID.iotcloud.tencentdevices.com"},
		{"tencent", []any{"host", "broker.example"}, "broker.example"},
		{"baidu", nil, "core1.iot.gz.baidubce.com"},
		{"baidu", []any{"region", "bj"}, "core1.iot.bj.baidubce.com"},
		{"baidu", []any{"host", "broker.example"}, "broker.example"},
		{"tuya", nil, "m1.tuyacn.com"},
		{"tuya", []any{"region", "eu"}, "m1.tuyaeu.com"},
		{"tuya", []any{"host", "broker.example"}, "broker.example"},
	}
	for _, tt := range tests {
		c := mustSign(t, Request{Cloud: tt.cloud, Params: with(tt.cloud, tt.kv...), Secret: testB64, Now: time.Unix(1700000000, 0)})
		if c.Host != tt.want {
			t.Errorf("%s %v: host %q, want %q", tt.cloud, tt.kv, c.Host, tt.want)
		}
	}
}
