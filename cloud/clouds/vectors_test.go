package clouds

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"
)

func mustSign(t *testing.T, req Request) Credentials {
	t.Helper()
	c, err := Sign(req)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return c
}

// TestAliyunVendorVectors checks the published Alibaba Cloud vectors.
func TestAliyunVendorVectors(t *testing.T) {
	tests := []struct {
		name, source                     string
		pk, dn, clientID, secret, method string
		mode                             int
		ms                               int64
		wantClientID, wantUser, wantPass string
	}{
		{
			name:   "pk/device",
			source: "Alibaba Cloud IoT Platform docs, MQTT-TCP connection example (docs/clouds.md, first aliyun vector)",
			pk:     "pk", dn: "device", clientID: "12345", secret: "secret", method: "hmacsha1", mode: 3, ms: 789,
			wantClientID: "12345|securemode=3,signmethod=hmacsha1,timestamp=789|",
			wantUser:     "device&pk",
			wantPass:     "FAFD82A3D602B37FB0FA8B7892F24A477F851A14",
		},
		{
			name:   "light1983432",
			source: "Alibaba Cloud IoT Platform docs, signature example for light1983432 (docs/clouds.md, second aliyun vector)",
			pk:     "a14Xib5kdYd", dn: "light1983432", clientID: "SN1928339", secret: "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq", method: "hmacsha1", mode: 2, ms: 1539421321846,
			wantClientID: "SN1928339|securemode=2,signmethod=hmacsha1,timestamp=1539421321846|",
			wantUser:     "light1983432&a14Xib5kdYd",
			wantPass:     "b2488041f64f425016b467ee1c94959ebd592ad1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustSign(t, Request{
				Cloud:  "aliyun",
				Params: map[string]any{"productKey": tt.pk, "deviceName": tt.dn, "clientId": tt.clientID, "signMethod": tt.method, "secureMode": tt.mode},
				Secret: tt.secret, Now: time.UnixMilli(tt.ms),
			})
			if c.ClientID != tt.wantClientID || c.Username != tt.wantUser {
				t.Errorf("clientId, username = %q, %q; want %q, %q (%s)", c.ClientID, c.Username, tt.wantClientID, tt.wantUser, tt.source)
			}
			// The platform accepts either hex case; credsign sends lowercase.
			if c.Password != strings.ToLower(tt.wantPass) {
				t.Errorf("password = %s, want %s (%s)", c.Password, strings.ToLower(tt.wantPass), tt.source)
			}
			if c.ExpiresAt != nil || c.ExpiryEnforced {
				t.Errorf("aliyun does not enforce expiry: got expiresAt %v, enforced %v", c.ExpiresAt, c.ExpiryEnforced)
			}
			if c.TLS != (tt.mode == 2) || c.Port != 1883 {
				t.Errorf("tls, port = %v, %d; want %v, 1883", c.TLS, c.Port, tt.mode == 2)
			}
		})
	}
}

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

// TestAzureVendorVectors checks the HMAC primitive against the Azure SDK's
// published vector and the SAS layout against the Azure IoT Hub docs' example.
func TestAzureVendorVectors(t *testing.T) {
	// Source: Azure SDK SAS tests (docs/clouds.md first azure vector).
	const key = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	kb, _ := base64.StdEncoding.DecodeString(key)
	if got := azureSig(kb, []byte("sign this message")); got != "8NJRMT83CcplGrAGaUVIUM/md5914KpWVNngSVoF9/M=" {
		t.Fatalf("azureSig = %s", got)
	}
	// Source: Azure IoT Hub docs, "Control access to IoT Hub" SAS example
	// (docs/clouds.md second azure vector): hub myiothub.azure-devices.net,
	// device my_device, se 1578941692.
	const toSign = "myiothub.azure-devices.net%2Fdevices%2Fmy_device\n1578941692"
	sig := azureSig(kb, []byte(toSign))
	want := "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device&sig=" + url.QueryEscape(sig) + "&se=1578941692"
	c := mustSign(t, Request{Cloud: "azure", Params: map[string]any{"hubHost": "myiothub.azure-devices.net", "deviceId": "my_device"},
		Secret: key, Now: time.Unix(1578941692-3600, 0), TTL: time.Hour})
	if c.Password != want {
		t.Errorf("password = %s\nwant       %s", c.Password, want)
	}
	if c.ClientID != "my_device" || c.Username != "myiothub.azure-devices.net/my_device/?api-version=2021-04-12" {
		t.Errorf("clientId, username = %q, %q", c.ClientID, c.Username)
	}
	if c.Host != "myiothub.azure-devices.net" || c.Port != 8883 || !c.TLS || !c.ExpiryEnforced || c.ExpiresAt.Unix() != 1578941692 {
		t.Errorf("address or expiry wrong: %+v", c)
	}
}

// TestAzureModuleAndPolicy checks the module identity and policy key forms
// (Azure IoT Hub docs: module identity MQTT username and skn for policy keys).
func TestAzureModuleAndPolicy(t *testing.T) {
	const key = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	kb, _ := base64.StdEncoding.DecodeString(key)
	c := mustSign(t, Request{Cloud: "azure", Params: map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "d1", "moduleId": "m1", "policyName": "registryReadWrite"},
		Secret: key, Now: time.Unix(1000, 0), TTL: 10 * time.Second})
	sr := "h.azure-devices.net%2Fdevices%2Fd1%2Fmodules%2Fm1"
	want := "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(azureSig(kb, []byte(sr+"\n1010"))) + "&se=1010&skn=registryReadWrite"
	if c.Password != want || c.ClientID != "d1/m1" || c.Username != "h.azure-devices.net/d1/m1/?api-version=2021-04-12" {
		t.Errorf("got %q %q %q\nwant password %q", c.Password, c.ClientID, c.Username, want)
	}
}

// TestTencentAlgorithm checks Tencent's recipe against the algorithm of the
// Tencent IoT Hub docs ("device connection with key authentication"). No vendor
// publishes a (PSK, username) -> password pair, so the expected value is the
// documented HMAC computed here with the standard library.
func TestTencentAlgorithm(t *testing.T) {
	psk := base64.StdEncoding.EncodeToString([]byte("tencent-psk-bytes"))
	for _, tt := range []struct{ method string }{{"hmacsha256"}, {"hmacsha1"}} {
		c := mustSign(t, Request{Cloud: "tencent", Params: map[string]any{"productId": "PID1234567", "deviceName": "dev1", "connId": "mYsTr", "signMethod": tt.method},
			Secret: psk, Now: time.Unix(1700000000, 5e8), TTL: time.Hour})
		wantUser := "PID1234567dev1;12010126;mYsTr;1700003600"
		newHash := sha256.New
		if tt.method == "hmacsha1" {
			newHash = sha1.New
		}
		wantPass := hex.EncodeToString(hmacSum(newHash, []byte("tencent-psk-bytes"), []byte(wantUser))) + ";" + tt.method
		if c.ClientID != "PID1234567dev1" || c.Username != wantUser || c.Password != wantPass {
			t.Errorf("%s: got %q %q %q, want %q %q", tt.method, c.ClientID, c.Username, c.Password, wantUser, wantPass)
		}
		if c.Host != "PID1234567.iotcloud.tencentdevices.com" || c.Port != 1883 || c.TLS || !c.ExpiryEnforced || c.ExpiresAt.Unix() != 1700003600 {
			t.Errorf("%s: address or expiry wrong: %+v", tt.method, c)
		}
	}
}

// azureSig is b64(HMAC-SHA256(key, msg)), the signature of a SAS token.
func azureSig(key, msg []byte) string {
	return base64.StdEncoding.EncodeToString(hmacSHA256(key, msg))
}
