package cloudemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// wantErr fails t unless err is (or wraps) want; a nil want means no error.
func wantErr(t *testing.T, fn string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		t.Fatalf("%s = %v, want %v", fn, err, want)
	}
}

func finder(m map[string]string) secrets {
	return func(k string) (string, bool) { s, ok := m[k]; return s, ok }
}

// azureSig is b64(HMAC-SHA256(b64d(key), msg)), the SAS signature primitive.
func azureSig(t *testing.T, key, msg string) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(hmacRaw(b64(t, key), msg))
}

func sasToken(t *testing.T, key, resource string, se int64) string {
	sr := url.QueryEscape(resource)
	s := strconv.FormatInt(se, 10)
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(azureSig(t, key, sr+"\n"+s)) + "&se=" + s
}

func tencentPassword(t *testing.T, psk, username string) string {
	t.Helper()
	return hex.EncodeToString(hmacRaw(b64(t, psk), username)) + ";hmacsha256"
}

// b64 decodes the standard base64 s.
func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyAliyun(t *testing.T) {
	devs := finder(map[string]string{
		"pk/device":                "secret",
		"a14Xib5kdYd/light1983432": "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq",
	})
	tests := []struct {
		name, clientID, username, password string
		tls                                bool
		want                               error
	}{
		// Published vector: Alibaba Cloud "MQTT-TCP connection" document, Java/C SDK examples (docs/clouds.md).
		{"published sha1 upper", "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", "device&pk", "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", false, nil},
		{"published sha1 lower", "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", "device&pk", "fafd82a3d602b37fb0fa8b7892f24a477f851a14", false, nil},
		// Published vector: Alibaba Cloud "sign MQTT CONNECT" example, light1983432 (docs/clouds.md).
		{"published light", "SN1928339|securemode=2,signmethod=hmacsha1,timestamp=1539421321846|", "light1983432&a14Xib5kdYd", "b2488041f64f425016b467ee1c94959ebd592ad1", true, nil},
		{"mislabelled sign method", "12345|securemode=3,signmethod=hmacsha256,timestamp=789|", "device&pk", "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", false, ErrBadCredentials},
		{"timestamp not signed", "12345|securemode=3,signmethod=hmacsha1,timestamp=790|", "device&pk", "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", false, ErrBadCredentials},
		{"securemode does not match transport", "12345|securemode=2,signmethod=hmacsha1,timestamp=789|", "device&pk", "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", false, ErrBadCredentials},
		{"unknown device", "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", "other&pk", "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", false, ErrUnknownDevice},
		{"no pipe", "12345", "device&pk", "x", false, ErrBadCredentials},
		{"bad username", "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", "devicepk", "x", false, ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verifyAliyun(tt.clientID, tt.username, tt.password, tt.tls, devs)
			wantErr(t, "verifyAliyun", err, tt.want)
		})
	}
}

func TestVerifyHuawei(t *testing.T) {
	// Published vector: Huawei IoTDA "device connection authentication" parameter tool
	// (secret 12345678, ts 2025041401), docs/clouds.md.
	const pw = "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
	devs := finder(map[string]string{"prod_node1": "12345678"})
	at := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	tests := []struct {
		name, clientID, username, password string
		now                                time.Time
		want                               error
	}{
		{"published, checked, same hour", "prod_node1_0_1_2025041401", "prod_node1", pw, at("2025-04-14T01:30:00Z"), nil},
		{"published, checked, end of next hour", "prod_node1_0_1_2025041401", "prod_node1", pw, at("2025-04-14T02:00:00Z"), nil},
		{"checked, stale hour", "prod_node1_0_1_2025041401", "prod_node1", pw, at("2025-04-14T02:00:01Z"), ErrExpired},
		{"checked, future hour", "prod_node1_0_1_2025041401", "prod_node1", pw, at("2025-04-13T23:59:00Z"), ErrBadCredentials},
		{"unchecked, a year later", "prod_node1_0_0_2025041401", "prod_node1", pw, at("2026-04-14T01:30:00Z"), nil},
		{"upper-case hex", "prod_node1_0_0_2025041401", "prod_node1", "C75150E6CB841417396819E4D2EE4358A416344A03A083E3A8567074DDEC820A", at("2026-04-14T01:30:00Z"), nil},
		{"keyed by the secret", "prod_node1_0_0_2025041401", "prod_node1", hmacHex(sha256.New, []byte("12345678"), []byte("2025041401")), at("2025-04-14T01:30:00Z"), ErrBadCredentials},
		{"username is not the device", "prod_node1_0_0_2025041401", "prod_node2", pw, at("2025-04-14T01:30:00Z"), ErrBadCredentials},
		{"bad hour", "prod_node1_0_0_2025041425", "prod_node1", pw, at("2025-04-14T01:30:00Z"), ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verifyHuawei(tt.clientID, tt.username, tt.password, tt.now, devs)
			wantErr(t, "verifyHuawei", err, tt.want)
		})
	}
}

func TestAzureSignaturePrimitive(t *testing.T) {
	// Published vector: Azure SDK SAS tests / docs/clouds.md.
	got := azureSig(t, "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=", "sign this message")
	if want := "8NJRMT83CcplGrAGaUVIUM/md5914KpWVNngSVoF9/M="; got != want {
		t.Fatalf("sig = %s, want %s", got, want)
	}
}

func TestVerifyAzure(t *testing.T) {
	const key = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	// Published example: Azure IoT Hub "control access" page (hub myiothub, device my_device, se 1578941692).
	const hub, se = "myiothub.azure-devices.net", int64(1578941692)
	res := hub + "/devices/my_device"
	devs := finder(map[string]string{
		res:                                 key,
		hub + "/devices/d2/modules/m1":      key,
		hub + "/policies/registryRead":      key,
		"other.azure-devices.net/devices/x": key,
	})
	user := hub + "/my_device/?api-version=2021-04-12"
	good := sasToken(t, key, res, se)
	if want := "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device&sig="; good[:len(want)] != want {
		t.Fatalf("token prefix %q, want %q", good[:len(want)], want)
	}
	before, after := time.Unix(se-1, 0), time.Unix(se, 0)
	tests := []struct {
		name, clientID, username, password string
		tls                                bool
		now                                time.Time
		want                               error
	}{
		{"published resource", "my_device", user, good, true, before, nil},
		{"expired", "my_device", user, good, true, after, ErrExpired},
		{"plain TCP", "my_device", user, good, false, before, ErrBadCredentials},
		{"se in milliseconds signed as seconds", "my_device", user, good[:len(good)-len("1578941692")] + "1578941692000", true, before, ErrBadCredentials},
		{"sig not URL-encoded", "my_device", user, "SharedAccessSignature sr=" + url.QueryEscape(res) + "&sig=" + azureSig(t, key, url.QueryEscape(res)+"\n1578941692") + "&se=1578941692", true, before, nil},
		{"key not decoded", "my_device", user, "SharedAccessSignature sr=" + url.QueryEscape(res) + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(hmacRaw([]byte(key), url.QueryEscape(res)+"\n1578941692"))) + "&se=1578941692", true, before, ErrBadCredentials},
		{"client id is not the device", "other", user, good, true, before, ErrBadCredentials},
		{"module", "d2/m1", hub + "/d2/m1/?api-version=2021-04-12", sasToken(t, key, hub+"/devices/d2/modules/m1", se), true, before, nil},
		{"policy key", "my_device", user, sasToken(t, key, res, se) + "&skn=registryRead", true, before, nil},
		{"sr of another device", "my_device", user, sasToken(t, key, "other.azure-devices.net/devices/x", se), true, before, ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := verifyAzure(tt.clientID, tt.username, tt.password, tt.tls, tt.now, devs)
			wantErr(t, "verifyAzure", err, tt.want)
			if err == nil && !v.expires.Equal(time.Unix(se, 0)) {
				t.Fatalf("expires = %v, want se", v.expires)
			}
		})
	}
}

// hmacRaw is HMAC-SHA256, computed here with crypto/hmac.
func hmacRaw(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func TestVerifyTencent(t *testing.T) {
	// No vendor publishes a (PSK, username) → password pair (docs/clouds.md); the
	// password below is built from the documented algorithm.
	const psk = "MTIzNDU2Nzg5MGFiY2RlZg==" // base64 of "1234567890abcdef"
	devs := finder(map[string]string{"ABCDEFGHIJlamp": psk})
	exp := time.Unix(1700000000, 0)
	user := "ABCDEFGHIJlamp;12010126;a1b2c;1700000000"
	pw := tencentPassword(t, psk, user)
	notDecoded := hmacHex(sha256.New, []byte(psk), []byte(user)) + ";hmacsha256"
	tests := []struct {
		name, clientID, username, password string
		now                                time.Time
		want                               error
	}{
		{"valid", "ABCDEFGHIJlamp", user, pw, exp.Add(-time.Second), nil},
		{"SDK app id 21010406", "ABCDEFGHIJlamp", "ABCDEFGHIJlamp;21010406;a1b2c;1700000000", tencentPassword(t, psk, "ABCDEFGHIJlamp;21010406;a1b2c;1700000000"), exp.Add(-time.Second), nil},
		{"expired", "ABCDEFGHIJlamp", user, pw, exp, ErrExpired},
		{"PSK not decoded", "ABCDEFGHIJlamp", user, notDecoded, exp.Add(-time.Second), ErrBadCredentials},
		{"client id mismatch", "ABCDEFGHIJlamp2", user, pw, exp.Add(-time.Second), ErrBadCredentials},
		{"no method", "ABCDEFGHIJlamp", user, pw[:64], exp.Add(-time.Second), ErrBadCredentials},
		{"unknown device", "X", "X;12010126;a1b2c;1700000000", pw, exp.Add(-time.Second), ErrUnknownDevice},
		{"expiry in ms is not seconds", "ABCDEFGHIJlamp", "ABCDEFGHIJlamp;12010126;a1b2c;x", pw, exp, ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verifyTencent(tt.clientID, tt.username, tt.password, tt.now, devs)
			wantErr(t, "verifyTencent", err, tt.want)
		})
	}
}

// fuzzParser fuzzes parse from seeds: a text it accepts must not give a
// value that broken reports.
func fuzzParser[T any](f *testing.F, parse func(string) (T, error), broken func(T) bool, seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := parse(s); err == nil && broken(v) {
			t.Fatalf("accepted %q as %+v", s, v)
		}
	})
}

func FuzzParseAliyunClientID(f *testing.F) {
	fuzzParser(f, parseAliyunClientID, func(c aliyunClientID) bool { return c.id == "" || c.signMethod == "" || len(c.id) > 64 },
		"12345|securemode=3,signmethod=hmacsha1,timestamp=789|", "a|signmethod=x|", "||")
}

func FuzzParseTencentUsername(f *testing.F) {
	fuzzParser(f, parseTencentUsername, func(u tencentUsername) bool { return u.clientID == "" || u.expiry.Unix() <= 0 },
		"pdev;12010126;abcde;1700000000", ";;;")
}

func FuzzParseHuaweiClientID(f *testing.F) {
	fuzzParser(f, parseHuaweiClientID, func(c huaweiClientID) bool { return c.deviceID == "" || c.hour.Format("2006010215") != c.ts },
		"prod_node1_0_1_2025041401", "___")
}

func FuzzParseAzure(f *testing.F) {
	f.Add("h.azure-devices.net/d/?api-version=2021-04-12", "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=abc%3D&se=1")
	f.Add("/?", "SharedAccessSignature &")
	f.Fuzz(func(t *testing.T, user, pass string) {
		if u, err := parseAzureUsername(user); err == nil && (u.hubHost == "" || u.deviceID == "" || u.apiVersion == "") {
			t.Fatalf("accepted username %q as %+v", user, u)
		}
		if s, err := parseAzureSAS(pass); err == nil && (s.sr == "" || s.sig == "" || s.se <= 0) {
			t.Fatalf("accepted password %q as %+v", pass, s)
		}
	})
}
