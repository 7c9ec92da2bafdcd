package clouds

import (
	"testing"
	"time"
)

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
		secret := testB64
		if tt.cloud == "tuya" {
			secret = testB64[:16] // Tuya's secrets are 16 characters
		}
		c := mustSign(t, Request{Cloud: tt.cloud, Params: with(tt.cloud, tt.kv...), Secret: secret, Now: time.Unix(1700000000, 0)})
		if c.Host != tt.want {
			t.Errorf("%s %v: host %q, want %q", tt.cloud, tt.kv, c.Host, tt.want)
		}
	}
}
