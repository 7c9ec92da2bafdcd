package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credsign/credsign/cloud"
)

func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// TestSignDesignExample runs the design's offline-signing example: the published
// Aliyun vector (Alibaba Cloud docs, via docs/clouds.md).
func TestSignDesignExample(t *testing.T) {
	out, errOut, code := runCLI(t, "", "sign", "--cloud", "aliyun", "--param", "productKey=pk", "--param", "deviceName=device", "--param", "clientId=12345",
		"--param", "signMethod=hmacsha1", "--param", "secureMode=3", "--secret", "secret", "--now", "1970-01-01T00:00:00.789Z", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var c map[string]any
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want := map[string]any{
		"deviceId": "device", "cloud": "aliyun", "clientId": "12345|securemode=3,signmethod=hmacsha1,timestamp=789|",
		"username": "device&pk", "password": "fafd82a3d602b37fb0fa8b7892f24a477f851a14",
		"host": "pk.iot-as-mqtt.cn-shanghai.aliyuncs.com", "port": 1883.0, "tls": false,
		"issuedAt": "1970-01-01T00:00:00.789Z", "expiresAt": nil, "expiryEnforced": false, "refreshAfter": "1970-01-01T00:40:00.789Z",
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %#v, want %#v", k, c[k], v)
		}
	}
	topics, _ := c["topics"].(map[string]any)
	if topics["telemetry"] != "/pk/device/user/update" || topics["commands"] != "/pk/device/user/get" {
		t.Errorf("topics = %v", c["topics"])
	}
	if len(c) != len(want)+1 {
		t.Errorf("output has %d fields, want %d: %s", len(c), len(want)+1, out)
	}
}

// TestSignInputs: the secret from a file or stdin, a device document, Unix
// seconds for --now, plain seconds for --ttl.
func TestSignInputs(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("12345678\r\n"), 0o600)
	devFile := filepath.Join(dir, "dev.json")
	os.WriteFile(devFile, []byte(`{"cloud":"huawei","params":{"deviceId":"d","checkTimestamp":true},"secret":"12345678","labels":{"site":"sz"}}`), 0o600)
	// Huawei vector (Huawei IoTDA docs via docs/clouds.md): ts 2025041401.
	const want = "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"secret file", "", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret-file", secretFile, "--now", "2025-04-14T01:30:00Z"}},
		{"secret stdin", "12345678\n", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret-file", "-", "--now", "1744594200"}},
		{"device file", "", []string{"--device", devFile, "--now", "2025-04-14T09:30:00+08:00", "--ttl", "1800"}},
		{"device stdin", `{"cloud":"huawei","params":{"deviceId":"d"},"secret":"12345678"}`, []string{"--device", "-", "--now", "2025-04-14T01:00:00Z"}},
		{"device without secret", `{"cloud":"huawei","params":{"deviceId":"d"}}`, []string{"--device", "-", "--secret", "12345678", "--now", "2025-04-14T01:00:00Z"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.stdin, append([]string{"sign"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var c struct{ Password, ClientID string }
			json.Unmarshal([]byte(out), &c)
			if c.Password != want {
				t.Errorf("password = %q, want %q", c.Password, want)
			}
		})
	}
}

// TestSignBadInput: every bad input fails with exit 2, nothing on stdout, one
// line on stderr that names the problem and never shows the secret.
func TestSignBadInput(t *testing.T) {
	const secret = "S3cretValue!"
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"unknown cloud", "", []string{"--cloud", "gcp", "--secret", secret}, "unknown cloud"},
		{"no cloud", "", []string{"--secret", secret}, "--cloud is required"},
		{"missing param", "", []string{"--cloud", "aliyun", "--param", "productKey=p", "--secret", secret}, "--param deviceName: is required"},
		{"unknown param", "", []string{"--cloud", "huawei", "--param", "deviceId=d", "--param", "region=x", "--secret", secret}, "--param region: unknown param"},
		{"param without value", "", []string{"--cloud", "huawei", "--param", "deviceId", "--secret", secret}, "want name=value"},
		{"param twice", "", []string{"--cloud", "huawei", "--param", "deviceId=a", "--param", "deviceId=b", "--secret", secret}, "given twice"},
		{"value not allowed", "", []string{"--cloud", "tencent", "--param", "productId=P", "--param", "deviceName=d", "--param", "signMethod=hmacmd5", "--secret", "YWJj"}, "must be one of"},
		{"azure key not base64", "", []string{"--cloud", "azure", "--param", "hubHost=h.azure-devices.net", "--param", "deviceId=d", "--secret", secret}, "base64"},
		{"tencent psk not base64", "", []string{"--cloud", "tencent", "--param", "productId=P", "--param", "deviceName=d", "--secret", secret}, "base64"},
		{"aliyun clientId too long", "", []string{"--cloud", "aliyun", "--param", "productKey=p", "--param", "deviceName=d", "--param", "clientId=" + strings.Repeat("x", 65), "--secret", secret}, "at most 64"},
		{"aliyun clientId with pipe", "", []string{"--cloud", "aliyun", "--param", "productKey=p", "--param", "deviceName=d", "--param", "clientId=a|b", "--secret", secret}, "'|'"},
		{"ttl zero", "", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret", secret, "--ttl", "0"}, "positive"},
		{"ttl negative", "", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret", secret, "--ttl", "-1h"}, "positive"},
		{"ttl garbage", "", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret", secret, "--ttl", "soon"}, "duration"},
		{"ttl too long", "", []string{"--cloud", "azure", "--param", "hubHost=h.azure-devices.net", "--param", "deviceId=d", "--secret", "YWJj", "--ttl", "9000h"}, "longer than azure allows"},
		{"bad now", "", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret", secret, "--now", "tomorrow"}, "--now"},
		{"no secret", "", []string{"--cloud", "huawei", "--param", "deviceId=d"}, "secret is required"},
		{"empty secret on stdin", "\n", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret-file", "-"}, "secret is required"},
		{"two secrets", "", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret", secret, "--secret-file", "x"}, "not both"},
		{"missing secret file", "", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret-file", "/nonexistent/secret"}, "no such file"},
		{"device not JSON", "{" + secret, []string{"--device", "-"}, "not a device document"},
		{"device unknown field", `{"cloud":"huawei","secret":"` + secret + `","sekret":1}`, []string{"--device", "-"}, `unknown field "sekret"`},
		{"device cloud contradicted", `{"cloud":"huawei","params":{"deviceId":"d"},"secret":"` + secret + `"}`, []string{"--device", "-", "--cloud", "azure"}, "contradicts"},
		{"undefined flag", "", []string{"--colour", "red"}, "not defined"},
		{"stray argument", "", []string{"--cloud", "huawei", "extra"}, "unexpected argument"},
		{"onenet key not base64", "", []string{"--cloud", "onenet", "--param", "productId=P", "--param", "deviceName=d", "--secret", secret}, "base64"},
		{"onenet keyScope", "", []string{"--cloud", "onenet", "--param", "productId=P", "--param", "deviceName=d", "--param", "keyScope=user", "--secret", "YWJj"}, "--param keyScope: must be one of"},
		{"onenet deviceName with slash", "", []string{"--cloud", "onenet", "--param", "productId=P", "--param", "deviceName=a/b", "--secret", "YWJj"}, "--param deviceName"},
		{"baidu signMethod", "", []string{"--cloud", "baidu", "--param", "iotCoreId=c", "--param", "deviceKey=k", "--param", "signMethod=md5", "--secret", secret}, "--param signMethod: must be one of"},
		{"baidu deviceKey with pipe", "", []string{"--cloud", "baidu", "--param", "iotCoreId=c", "--param", "deviceKey=a|b", "--secret", secret}, "--param deviceKey"},
		{"baidu no iotCoreId", "", []string{"--cloud", "baidu", "--param", "deviceKey=k", "--secret", secret}, "--param iotCoreId: is required"},
		{"tuya region", "", []string{"--cloud", "tuya", "--param", "deviceId=d", "--param", "region=mars", "--secret", secret}, "--param region: must be one of"},
		{"tuya deviceId with comma", "", []string{"--cloud", "tuya", "--param", "deviceId=a,b", "--secret", secret}, "--param deviceId"},
		{"jwt without token key", "", []string{"--cloud", "jwt", "--param", "host=h", "--device-id", "d"}, "--token-key"},
		{"jwt claims not JSON", "", []string{"--cloud", "jwt", "--param", "host=h", "--param", "claims={", "--device-id", "d"}, "--param claims"},
		{"jwt missing token key file", "", []string{"--cloud", "jwt", "--param", "host=h", "--token-key", "/nonexistent/key.pem"}, "no such file"},
		{"token key for an HMAC cloud", "", []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret", secret, "--token-key", "/nonexistent/key.pem"}, "not signed with a token key"},
		{"aws secret not PEM", "", []string{"--cloud", "aws", "--param", "endpoint=e", "--param", "authorizerName=a", "--device-id", "d", "--secret", secret}, "PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cmd := range []string{"sign", "explain"} {
				out, errOut, code := runCLI(t, tt.stdin, append([]string{cmd}, tt.args...)...)
				if code != 2 {
					t.Errorf("%s: exit %d, want 2 (stderr %q)", cmd, code, errOut)
				}
				if out != "" {
					t.Errorf("%s: stdout %q, want nothing", cmd, out)
				}
				if strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
					t.Errorf("%s: stderr is not one line: %q", cmd, errOut)
				}
				if !strings.Contains(errOut, tt.want) {
					t.Errorf("%s: stderr %q does not say %q", cmd, errOut, tt.want)
				}
				if strings.Contains(errOut, secret) {
					t.Errorf("%s: stderr shows the secret: %q", cmd, errOut)
				}
			}
		})
	}
}

// TestExplain: the steps name what is signed and how, and the secret never appears.
func TestExplain(t *testing.T) {
	out, errOut, code := runCLI(t, "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=", "explain", "--cloud", "azure", "--param", "hubHost=myiothub.azure-devices.net",
		"--param", "deviceId=my_device", "--secret-file", "-", "--now", "1578938092")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		`myiothub.azure-devices.net%2Fdevices%2Fmy_device\n1578941692`, // the string to sign of the Azure docs' example
		"32 key bytes from 44 characters of base64",
		"HMAC-SHA256",
		`"password": "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device&sig=`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "NMgJDvdKTxjLi") {
		t.Error("explain shows the key")
	}
}

func TestCloudsAndHelp(t *testing.T) {
	// The API's shape: {"clouds":[…]} as GET /v1/clouds answers.
	out, _, code := runCLI(t, "", "clouds", "--json")
	var list struct {
		Clouds []struct {
			Name                               string
			Params                             []struct{ Name string }
			MaxTtlSeconds, MaxDeviceTtlSeconds int64
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Clouds) != 10 || list.Clouds[0].Name != "aliyun" {
		t.Errorf("clouds --json: exit %d, %s", code, out)
	}
	for _, c := range list.Clouds {
		if c.Name == "huawei" && (c.MaxTtlSeconds != 3600 || c.MaxDeviceTtlSeconds != 3600) {
			t.Errorf("huawei: max %d, device max %d; want 3600 (what serve allows)", c.MaxTtlSeconds, c.MaxDeviceTtlSeconds)
		}
	}
	out, _, code = runCLI(t, "", "clouds")
	if code != 0 || !strings.Contains(out, "productKey") || !strings.Contains(out, "hubHost") {
		t.Errorf("clouds: exit %d, %s", code, out)
	}
	out, _, code = runCLI(t, "", "sign", "-h")
	if code != 0 || !strings.Contains(out, "--secret-file") && !strings.Contains(out, "-secret-file") {
		t.Errorf("sign -h: exit %d, %s", code, out)
	}
	if _, errOut, code := runCLI(t, "", "nonsense"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d %q", code, errOut)
	}
}

// TestSignMoreClouds: the published vectors of docs/clouds.md for onenet,
// baidu and tuya through the CLI, and a jwt token from a key file.
func TestSignMoreClouds(t *testing.T) {
	for _, tt := range []struct {
		name, source string
		args         []string
		want         map[string]string
	}{
		{"onenet", "OneNET token algorithm doc (docs/clouds.md)",
			[]string{"--cloud", "onenet", "--param", "productId=123123", "--param", "deviceName=d", "--param", "signMethod=sha1", "--param", "keyScope=product",
				"--secret", "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw=", "--now", "1537251923", "--ttl", "1h"},
			map[string]string{"password": "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D", "username": "123123", "clientId": "d"}},
		{"baidu", "Baidu IoT Core MQTT doc (docs/clouds.md)",
			[]string{"--cloud", "baidu", "--param", "iotCoreId=abcd123", "--param", "deviceKey=mydevice", "--secret", "ImSeCrEt0I1M2jkl", "--now", "1583826857"},
			map[string]string{"password": "7f0e63d2c6e122100edde19e34e7df5b", "username": "thingidp@abcd123|mydevice|1583826857|MD5"}},
		{"tuya", "docs/clouds.md tuya vector",
			[]string{"--cloud", "tuya", "--param", "deviceId=6c95875d0f5ba69607nzfl", "--secret", "fb803786602df760", "--now", "1700000000"},
			map[string]string{"password": "1560ae9a5d22067b47f6e98347c6e408fd9e9b63cd6c1f354fedbe452b0375db", "clientId": "tuyalink_6c95875d0f5ba69607nzfl"}},
	} {
		out, errOut, code := runCLI(t, "", append([]string{"sign"}, tt.args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tt.name, code, errOut)
		}
		var c map[string]any
		json.Unmarshal([]byte(out), &c)
		for k, v := range tt.want {
			if c[k] != v {
				t.Errorf("%s: %s = %v, want %s (%s)", tt.name, k, c[k], v, tt.source)
			}
		}
	}

	key, err := cloud.GenerateTokenKey(cloud.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, _ := key.MarshalPEM()
	keyFile := filepath.Join(t.TempDir(), "token-key.pem")
	os.WriteFile(keyFile, pemKey, 0o600)
	out, errOut, code := runCLI(t, "", "explain", "--cloud", "jwt", "--param", "host=emqx.local", "--param", `claims={"acl":[]}`,
		"--device-id", "lamp-7", "--token-key", keyFile, "--issuer", "https://credsign.example", "--now", "1700000000")
	if code != 0 {
		t.Fatalf("jwt: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, key.ID) || !strings.Contains(out, `"sub":"lamp-7"`) || !strings.Contains(out, `"acl":[]`) || !strings.Contains(out, "EdDSA") {
		t.Errorf("jwt explain lacks the kid, claims or algorithm:\n%s", out)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("explain shows the token key")
	}
}
