package clouds

import (
	"strings"
	"testing"
	"time"
)

// TestTopics: every cloud names its standard topics for the device, as
// docs/clouds.md's Topics table gives them (sources there).
func TestTopics(t *testing.T) {
	key := testTokenKey(t, AlgES256)
	tests := []struct {
		cloud     string
		params    map[string]any
		secret    string
		telemetry string
		commands  string
		check     func(Topics) bool
	}{
		{"aliyun", map[string]any{"productKey": "pk", "deviceName": "dn"}, "s", "/pk/dn/user/update", "/pk/dn/user/get",
			func(tp Topics) bool {
				return tp.PropertyReport == "/sys/pk/dn/thing/event/property/post" && tp.PropertySet == "/sys/pk/dn/thing/service/property/set"
			}},
		{"tencent", map[string]any{"productId": "P1", "deviceName": "dn"}, testB64, "P1/dn/event", "P1/dn/control",
			func(tp Topics) bool {
				return tp.ShadowUpdate == "$shadow/operation/P1/dn" && tp.ShadowDelta == "$shadow/operation/result/P1/dn"
			}},
		{"huawei", map[string]any{"deviceId": "p_n"}, "s", "$oc/devices/p_n/sys/messages/up", "$oc/devices/p_n/sys/commands/#",
			func(tp Topics) bool {
				return tp.PropertyReport == "$oc/devices/p_n/sys/properties/report" && strings.HasSuffix(tp.CommandResponse, "request_id={request_id}")
			}},
		{"azure", map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "d"}, testB64, "devices/d/messages/events/", "devices/d/messages/devicebound/#",
			func(tp Topics) bool {
				return tp.TwinDesired == "$iothub/twin/PATCH/properties/desired/#" && tp.TwinResponse == "$iothub/twin/res/#" && tp.Methods == "$iothub/methods/POST/#"
			}},
		{"azure", map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "d", "moduleId": "m"}, testB64, "devices/d/modules/m/messages/events/", "devices/d/modules/m/inputs/#",
			func(tp Topics) bool { return tp.TwinGet == "$iothub/twin/GET/?$rid={rid}" }},
		{"onenet", map[string]any{"productId": "P", "deviceName": "d"}, testB64, "$sys/P/d/thing/property/post", "$sys/P/d/thing/property/set",
			func(tp Topics) bool { return tp.PropertyReply == "$sys/P/d/thing/property/post/reply" }},
		{"baidu", map[string]any{"iotCoreId": "c", "deviceKey": "k", "host": "127.0.0.1"}, "s", "$iot/k/user/telemetry", "$iot/k/user/commands",
			func(tp Topics) bool { return tp.ShadowDelta == "$iot/k/shadow/delta/desired" }},
		{"tuya", map[string]any{"deviceId": "t1", "host": "127.0.0.1"}, "s000000000000000", "tylink/t1/thing/property/report", "tylink/t1/thing/property/set",
			func(tp Topics) bool {
				return tp.Actions == "tylink/t1/thing/action/execute" && tp.Events == "tylink/t1/thing/event/trigger"
			}},
		{"jwt", map[string]any{"host": "h", "clientId": "c1", "telemetryTopic": "site/a/c1/up"}, "", "site/a/c1/up", "devices/c1/commands/#", nil},
		{"aws", map[string]any{"endpoint": "e", "authorizerName": "a", "clientId": "c1"}, testRSAPEM(t), "dt/credsign/c1/telemetry", "cmd/credsign/c1/#",
			func(tp Topics) bool { return tp.ShadowUpdate == "$aws/things/c1/shadow/update" }},
	}
	for _, tt := range tests {
		c := mustSign(t, Request{Cloud: tt.cloud, Params: tt.params, Secret: tt.secret, TokenKey: key, Issuer: "i", Now: time.Unix(1700000000, 0)})
		if c.Topics.Telemetry != tt.telemetry || c.Topics.Commands != tt.commands || (tt.check != nil && !tt.check(c.Topics)) {
			t.Errorf("%s %v: topics = %+v", tt.cloud, tt.params, c.Topics)
		}
	}
}
