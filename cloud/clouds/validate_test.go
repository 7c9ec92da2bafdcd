package clouds

import (
	"bytes"
	"encoding/base64"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testB64 = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="

// validByCloud holds, for each cloud, params that sign.
var validByCloud = map[string]map[string]any{
	"aliyun":     {"productKey": "pk", "deviceName": "dn"},
	"tencent":    {"productId": "PID", "deviceName": "dn"},
	"huawei":     {"deviceId": "p_n"},
	"azure":      {"hubHost": "h.azure-devices.net", "deviceId": "d"},
	"onenet":     {"productId": "PID", "deviceName": "dn"},
	"baidu":      {"iotCoreId": "core1", "deviceKey": "dk"},
	"tuya":       {"deviceId": "tid"},
	"tuyalegacy": {"deviceId": "tid"},
	"jwt":        {"host": "broker.example", "clientId": "dev1"},
	"aws":        {"endpoint": "abc-ats.iot.eu-west-1.amazonaws.com", "authorizerName": "credsign", "clientId": "dev1"},
}

// validParams returns a copy of the cloud's valid params (nil for an
// unknown cloud), for a test to change.
func validParams(cloud string) map[string]any { return maps.Clone(validByCloud[cloud]) }

func with(cloud string, kv ...any) map[string]any {
	p := validParams(cloud)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(p, kv[i].(string))
			continue
		}
		p[kv[i].(string)] = kv[i+1]
	}
	return p
}

// TestValidation checks that bad input is refused with an error naming the
// field, and that no error ever contains the secret.
func TestValidation(t *testing.T) {
	const secret = "TopSecretValue123"
	b64Secret := base64.StdEncoding.EncodeToString([]byte(secret))
	now := time.Unix(1700000000, 0)
	tests := []struct {
		name   string
		req    Request
		field  string
		reason string // a fragment of the reason
	}{
		{"unknown cloud", Request{Cloud: "gcp", Params: map[string]any{}, Secret: secret}, "cloud", "unknown cloud"},
		{"no cloud", Request{Secret: secret}, "cloud", "required"},
		{"missing param", Request{Cloud: "aliyun", Params: with("aliyun", "deviceName", nil), Secret: secret}, "params.deviceName", "required"},
		{"unknown param", Request{Cloud: "aliyun", Params: with("aliyun", "colour", "red"), Secret: secret}, "params.colour", "unknown param"},
		{"empty param", Request{Cloud: "huawei", Params: with("huawei", "deviceId", ""), Secret: secret}, "params.deviceId", "empty"},
		{"wrong type", Request{Cloud: "aliyun", Params: with("aliyun", "productKey", 12.0), Secret: secret}, "params.productKey", "string"},
		{"signMethod not allowed", Request{Cloud: "aliyun", Params: with("aliyun", "signMethod", "hmacsha512"), Secret: secret}, "params.signMethod", "one of"},
		{"secureMode not allowed", Request{Cloud: "aliyun", Params: with("aliyun", "secureMode", "4"), Secret: secret}, "params.secureMode", "one of"},
		{"secureMode not a number", Request{Cloud: "aliyun", Params: with("aliyun", "secureMode", "two"), Secret: secret}, "params.secureMode", "integer"},
		{"tencent signMethod md5", Request{Cloud: "tencent", Params: with("tencent", "signMethod", "hmacmd5"), Secret: b64Secret}, "params.signMethod", "one of"},
		{"aliyun clientId too long", Request{Cloud: "aliyun", Params: with("aliyun", "clientId", strings.Repeat("c", 65)), Secret: secret}, "params.clientId", "64"},
		{"aliyun clientId with pipe", Request{Cloud: "aliyun", Params: with("aliyun", "clientId", "a|b"), Secret: secret}, "params.clientId", "|"},
		{"aliyun default clientId too long", Request{Cloud: "aliyun", Params: with("aliyun", "productKey", strings.Repeat("p", 40), "deviceName", strings.Repeat("d", 30)), Secret: secret}, "params.clientId", "64"},
		{"azure key not base64", Request{Cloud: "azure", Params: validParams("azure"), Secret: secret + "!"}, "secret", "base64"},
		{"tencent psk not base64", Request{Cloud: "tencent", Params: validParams("tencent"), Secret: secret + "%"}, "secret", "base64"},
		{"secret with a control character", Request{Cloud: "huawei", Params: validParams("huawei"), Secret: "abc\x01"}, "secret", "control"},
		{"secret with a trailing newline", Request{Cloud: "aliyun", Params: validParams("aliyun"), Secret: "abc\n"}, "secret", "control"},
		{"secret not UTF-8", Request{Cloud: "aliyun", Params: validParams("aliyun"), Secret: "ab\xffc"}, "secret", "UTF-8"},
		{"tencent connId too long", Request{Cloud: "tencent", Params: with("tencent", "connId", "toolongconnid"), Secret: b64Secret}, "params.connId", "5 characters"},
		{"tencent connId not alphanumeric", Request{Cloud: "tencent", Params: with("tencent", "connId", "ab-cd"), Secret: b64Secret}, "params.connId", "letters and digits"},
		{"empty secret", Request{Cloud: "huawei", Params: validParams("huawei")}, "secret", "required"},
		{"zero port", Request{Cloud: "huawei", Params: with("huawei", "port", 0), Secret: secret}, "params.port", "between"},
		{"port too big", Request{Cloud: "azure", Params: with("azure", "port", "70000"), Secret: testB64}, "params.port", "between"},
		{"boolean as text", Request{Cloud: "huawei", Params: with("huawei", "checkTimestamp", "yes"), Secret: secret}, "params.checkTimestamp", "true or false"},
		{"host with scheme", Request{Cloud: "azure", Params: with("azure", "hubHost", "https://h.azure-devices.net"), Secret: testB64}, "params.hubHost", "host"},
		{"azure deviceId with slash", Request{Cloud: "azure", Params: with("azure", "deviceId", "a/b"), Secret: testB64}, "params.deviceId", "/"},
		{"tencent deviceName with semicolon", Request{Cloud: "tencent", Params: with("tencent", "deviceName", "a;b"), Secret: b64Secret}, "params.deviceName", ";"},
		{"negative ttl", Request{Cloud: "tencent", Params: validParams("tencent"), Secret: b64Secret, TTL: -time.Second}, "ttl", "positive"},
		{"sub-second ttl", Request{Cloud: "azure", Params: validParams("azure"), Secret: testB64, TTL: time.Millisecond}, "ttl", "at least"},
		{"ttl beyond a year", Request{Cloud: "azure", Params: validParams("azure"), Secret: testB64, TTL: 400 * 24 * time.Hour}, "ttl", "longer"},
		{"huawei checked ttl beyond an hour", Request{Cloud: "huawei", Params: validParams("huawei"), Secret: secret, TTL: 2 * time.Hour}, "ttl", "longer"},
		{"issue time before 1970", Request{Cloud: "huawei", Params: validParams("huawei"), Secret: secret, Now: time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC)}, "now", "between"},
		{"no issue time", Request{Cloud: "huawei", Params: validParams("huawei"), Secret: secret, Now: time.Time{}}, "now", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			if req.Now.IsZero() && tt.field != "now" {
				req.Now = now
			}
			_, err := Sign(req)
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want *InvalidError", err)
			}
			if ie.Field != tt.field || !strings.Contains(ie.Reason, tt.reason) {
				t.Errorf("err = %q, want field %q and reason containing %q", err, tt.field, tt.reason)
			}
			if req.Secret != "" && strings.Contains(err.Error(), req.Secret) || strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

// TestHuaweiUncheckedAllowsLongTTL: with checkTimestamp false nothing expires,
// so the one-hour limit does not apply.
func TestHuaweiUncheckedAllowsLongTTL(t *testing.T) {
	_, err := Sign(Request{Cloud: "huawei", Params: with("huawei", "checkTimestamp", "false"), Secret: "s", Now: time.Unix(0, 0), TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTextAndTypedParamsAgree: the CLI's text forms and the API's JSON values
// give the same credentials.
func TestTextAndTypedParamsAgree(t *testing.T) {
	now := time.Unix(1700000000, 0)
	typed := mustSign(t, Request{Cloud: "aliyun", Params: with("aliyun", "secureMode", 3.0, "port", 8883.0), Secret: "s", Now: now})
	text := mustSign(t, Request{Cloud: "aliyun", Params: with("aliyun", "secureMode", "3", "port", "8883"), Secret: "s", Now: now})
	if typed != text {
		t.Errorf("typed %+v != text %+v", typed, text)
	}
	if typed.TLS || typed.Port != 8883 {
		t.Errorf("secureMode 3 must be plain TCP on the given port: %+v", typed)
	}
}

func TestHostsAndDefaults(t *testing.T) {
	now := time.Unix(1700000000, 0)
	tests := []struct {
		name     string
		req      Request
		host     string
		port     int
		tls      bool
		deviceID string
	}{
		{"aliyun legacy", Request{Cloud: "aliyun", Params: validParams("aliyun")}, "pk.iot-as-mqtt.cn-shanghai.aliyuncs.com", 1883, true, "dn"},
		{"aliyun region", Request{Cloud: "aliyun", Params: with("aliyun", "regionId", "ap-southeast-1")}, "pk.iot-as-mqtt.ap-southeast-1.aliyuncs.com", 1883, true, "dn"},
		{"aliyun instance", Request{Cloud: "aliyun", Params: with("aliyun", "instanceId", "iot-06z00abc")}, "iot-06z00abc.mqtt.iothub.aliyuncs.com", 1883, true, "dn"},
		{"aliyun override", Request{Cloud: "aliyun", DeviceID: "lamp-7", Params: with("aliyun", "host", "127.0.0.1", "port", 18830)}, "127.0.0.1", 18830, true, "lamp-7"},
		{"tencent", Request{Cloud: "tencent", Params: validParams("tencent")}, "PID.iotcloud.tencentdevices.com", 1883, false, "dn"},
		{"huawei", Request{Cloud: "huawei", Params: validParams("huawei")}, "iot-mqtts.cn-north-4.myhuaweicloud.com", 8883, true, "p_n"},
		{"huawei instance", Request{Cloud: "huawei", Params: with("huawei", "host", "abc.st1.iotda-device.cn-north-4.myhuaweicloud.com")}, "abc.st1.iotda-device.cn-north-4.myhuaweicloud.com", 8883, true, "p_n"},
		{"azure", Request{Cloud: "azure", Params: validParams("azure")}, "h.azure-devices.net", 8883, true, "d"},
		{"azure override", Request{Cloud: "azure", Params: with("azure", "host", "localhost", "port", 28883)}, "localhost", 28883, true, "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.Now = now
			req.Secret = testB64
			c := mustSign(t, req)
			if c.Host != tt.host || c.Port != tt.port || c.TLS != tt.tls || c.DeviceID != tt.deviceID || c.Cloud != req.Cloud {
				t.Errorf("got host %q port %d tls %v deviceId %q cloud %q", c.Host, c.Port, c.TLS, c.DeviceID, c.Cloud)
			}
			if !c.IssuedAt.Equal(now) || !c.RefreshAfter.After(now) {
				t.Errorf("issuedAt %s refreshAfter %s", c.IssuedAt, c.RefreshAfter)
			}
			if c.ExpiresAt != nil && !c.RefreshAfter.Before(*c.ExpiresAt) {
				t.Errorf("refreshAfter %s not before expiresAt %s", c.RefreshAfter, c.ExpiresAt)
			}
		})
	}
}

// TestRefreshAfter: about two thirds of the lifetime, bounded by an enforced expiry.
func TestRefreshAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := mustSign(t, Request{Cloud: "azure", Params: validParams("azure"), Secret: testB64, Now: now, TTL: 90 * time.Minute})
	if want := now.Add(time.Hour); !c.RefreshAfter.Equal(want) {
		t.Errorf("azure refreshAfter %s, want %s", c.RefreshAfter, want)
	}
	// Huawei at 10:45 with the default hour: the triple lapses at 11:00.
	c = mustSign(t, Request{Cloud: "huawei", Params: validParams("huawei"), Secret: "s", Now: now.Add(45 * time.Minute)})
	if want := now.Add(55 * time.Minute); !c.RefreshAfter.Equal(want) || !c.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("huawei refreshAfter %s expiresAt %s, want %s and 11:00", c.RefreshAfter, c.ExpiresAt, want)
	}
	c = mustSign(t, Request{Cloud: "aliyun", Params: validParams("aliyun"), Secret: "s", Now: now, TTL: 3 * time.Hour})
	if want := now.Add(2 * time.Hour); !c.RefreshAfter.Equal(want) || c.ExpiresAt != nil {
		t.Errorf("aliyun refreshAfter %s, want %s", c.RefreshAfter, want)
	}
}

// TestTencentConnID: a random connId of five alphanumerics per issue, drawn
// from the given source; an explicit one is used as given.
func TestTencentConnID(t *testing.T) {
	now := time.Unix(1700000000, 0)
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		c := mustSign(t, Request{Cloud: "tencent", Params: validParams("tencent"), Secret: testB64, Now: now})
		parts := strings.Split(c.Username, ";")
		if len(parts) != 4 || len(parts[2]) != 5 || checkConnID(parts[2]) != nil {
			t.Fatalf("username %q has no 5-character alphanumeric connId", c.Username)
		}
		seen[parts[2]] = true
	}
	if len(seen) < 15 {
		t.Errorf("connIds repeat too often: %d distinct of 20", len(seen))
	}
	fixed := bytes.NewReader(bytes.Repeat([]byte{0, 1, 2, 3, 255, 61}, 10))
	c := mustSign(t, Request{Cloud: "tencent", Params: validParams("tencent"), Secret: testB64, Now: now, Rand: fixed})
	if parts := strings.Split(c.Username, ";"); parts[2] != "0123z" {
		t.Errorf("connId from fixed source = %q, want 0123z (byte 255 rejected)", parts[2])
	}
	if _, err := Sign(Request{Cloud: "tencent", Params: validParams("tencent"), Secret: testB64, Now: now, Rand: bytes.NewReader(nil)}); err == nil {
		t.Error("a failing random source must fail the issue")
	}
}

// TestRegistry: the API and CLI describe clouds from it.
func TestRegistry(t *testing.T) {
	var names []string
	for _, c := range Clouds() {
		names = append(names, c.Name)
		if c.Title == "" || len(c.Params) == 0 || c.MaxTTL < c.DefaultTTL {
			t.Errorf("%s: incomplete entry %+v", c.Name, c)
		}
		for _, p := range c.Params {
			if p.Description == "" || (p.Type != TypeString && p.Type != TypeInteger && p.Type != TypeBoolean && p.Type != TypeObject) {
				t.Errorf("%s.%s: bad spec %+v", c.Name, p.Name, p)
			}
		}
	}
	if strings.Join(names, ",") != "aliyun,aws,azure,baidu,huawei,jwt,onenet,tencent,tuya,tuyalegacy" {
		t.Errorf("clouds = %v", names)
	}
	c, ok := LookupCloud("aliyun")
	if !ok || c.Spec("signMethod").Default != "hmacsha256" || c.Spec("secureMode").Default != 2 || !c.Spec("productKey").Required {
		t.Errorf("aliyun spec wrong: %+v", c)
	}
	if _, ok := LookupCloud("gcp"); ok {
		t.Error("gcp must not be registered")
	}
	if c, _ := LookupCloud("jwt"); !c.Tokens || c.SecretFormat != SecretNone || !c.Spec("host").Required {
		t.Errorf("jwt spec wrong: %+v", c)
	}
	p, err := NormalizeParams("huawei", map[string]any{"deviceId": "d", "checkTimestamp": "false", "port": 8883.0})
	if err != nil || p["checkTimestamp"] != false || p["port"] != 8883 {
		t.Errorf("NormalizeParams = %v, %v", p, err)
	}
	if err := ValidateSecret("azure", "not base64!"); !IsInvalid(err) {
		t.Errorf("ValidateSecret = %v", err)
	}
}

// TestExplainRedactsSecret: every cloud's explanation names the steps and
// never shows the secret, and its credentials equal Sign's.
func TestExplainRedactsSecret(t *testing.T) {
	secrets := map[string]string{"aliyun": "AliSecretZZ", "huawei": "HuaweiSecretZZ", "tencent": testB64, "azure": testB64,
		"onenet": testB64, "baidu": "BaiduSecretZZ", "tuya": "TuyaSecretZZ0000", "tuyalegacy": "TuyaSecKeyZZ", "aws": testRSAPEM(t)}
	for _, cl := range Clouds() {
		req := Request{Cloud: cl.Name, Params: validParams(cl.Name), Secret: secrets[cl.Name], Now: time.Unix(1700000000, 0),
			TokenKey: testTokenKey(t, AlgES256), Issuer: "https://credsign.example", Rand: bytes.NewReader(make([]byte, 64))}
		if cl.Name == "tencent" {
			req.Params["connId"] = "abcde"
		}
		c, steps, err := Explain(req)
		if err != nil {
			t.Fatal(err)
		}
		req.Rand = bytes.NewReader(make([]byte, 64)) // the same jti again; ES256 signatures still differ
		if s := mustSign(t, req); !reflect.DeepEqual(s, c) && !cl.Tokens {
			t.Errorf("%s: Explain and Sign disagree", cl.Name)
		}
		names := map[string]bool{}
		for _, s := range steps {
			names[s.Name] = true
			if req.Secret != "" && strings.Contains(s.Detail, req.Secret) || strings.Contains(s.Detail, "PRIVATE KEY") {
				t.Errorf("%s: step %s shows the secret: %s", cl.Name, s.Name, s.Detail)
			}
		}
		for _, want := range []string{"content", "key", "algorithm", "password", "clientId", "username"} {
			if !names[want] {
				t.Errorf("%s: no %q step in %v", cl.Name, want, steps)
			}
		}
	}
}
