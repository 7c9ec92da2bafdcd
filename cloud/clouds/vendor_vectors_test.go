package clouds

import (
	"testing"
	"time"
)

// TestPublishedVendorVectors runs vectors published by the vendors (SDK tests
// and documentation) that are not in docs/clouds.md: Azure policy keys (skn)
// and module identities, and Huawei ClientIds issued from non-UTC clocks.
// Every expected value below is copied from the source named beside its row;
// an empty expectation means the source does not publish that field.
func TestPublishedVendorVectors(t *testing.T) {
	const azureKey = "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw="
	const azureHub = "iot-hub-for-test.azure-devices.net"
	tests := []struct {
		name, source string
		req          Request
		wantClientID string
		wantUsername string
		wantPassword string
		wantExpires  int64 // Unix seconds; 0: not checked
	}{
		{
			name: "azure device key",
			source: "Azure/azure-iot-cli-extension, azext_iot/tests/iothub/core/test_iot_ext_unit.py, " +
				"TestSasTokenAuth.test_generate_sas_token (uri .../devices/iot-device-for-test, no policy, expiry 1471940363)",
			req: Request{Cloud: "azure", Params: map[string]any{"hubHost": azureHub, "deviceId": "iot-device-for-test"},
				Secret: azureKey, Now: time.Unix(1471940363-3600, 0), TTL: time.Hour},
			wantClientID: "iot-device-for-test",
			wantUsername: azureHub + "/iot-device-for-test/?api-version=2021-04-12",
			wantPassword: "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test" +
				"&sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D&se=1471940363",
			wantExpires: 1471940363,
		},
		{
			name: "azure device, policy key iothubowner, issued at UTC+1",
			source: "Azure/azure-iot-cli-extension, earlier revision of azext_iot/tests/test_iot_ext_unit.py, " +
				"TestSasTokenAuth.test_generate_sas_token (policy_name iothubowner: same sig, skn=iothubowner)",
			req: Request{Cloud: "azure", Params: map[string]any{"hubHost": azureHub, "deviceId": "iot-device-for-test", "policyName": "iothubowner"},
				Secret: azureKey, Now: time.Date(2016, 8, 23, 8, 19, 23, 0, time.FixedZone("UTC+1", 3600)), TTL: time.Hour},
			wantClientID: "iot-device-for-test",
			wantPassword: "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test" +
				"&sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D&se=1471940363&skn=iothubowner",
			wantExpires: 1471940363,
		},
		{
			name: "azure module, policy key iothubowner",
			source: "Azure/azure-iot-cli-extension, azext_iot/tests/iothub/core/test_iot_ext_unit.py, " +
				"TestSasTokenAuth.test_generate_sas_token (uri .../devices/iot-device-for-test/modules/module-for-test, policy iothubowner)",
			req: Request{Cloud: "azure", Params: map[string]any{"hubHost": azureHub, "deviceId": "iot-device-for-test",
				"moduleId": "module-for-test", "policyName": "iothubowner"},
				Secret: azureKey, Now: time.Unix(1471940363-60, 0), TTL: time.Minute},
			wantClientID: "iot-device-for-test/module-for-test",
			wantUsername: azureHub + "/iot-device-for-test/module-for-test/?api-version=2021-04-12",
			wantPassword: "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test%2Fmodules%2Fmodule-for-test" +
				"&sig=JwAxBBBPYA0E%2FTHdnrXzUfBfuZ7deH6pppCniJ23Uu0%3D&se=1471940363&skn=iothubowner",
			wantExpires: 1471940363,
		},
		{
			name: "huawei ClientId, timestamp unchecked, issued at UTC+8",
			source: "Huawei Cloud ROMA Connect IoT docs, Gateway Login (support.huaweicloud.com/intl/en-us/devg-roma/roma_04_4003.html, " +
				"ae-ad-1-devg-roma/roma_04_4004.html): UTC 2018/7/24 17:56:20 -> D39564861q3gDa_0_0_2018072417",
			req: Request{Cloud: "huawei", Params: map[string]any{"deviceId": "D39564861q3gDa", "checkTimestamp": false},
				Secret: "12345678", Now: time.Date(2018, 7, 25, 1, 56, 20, 0, time.FixedZone("UTC+8", 8*3600))},
			wantClientID: "D39564861q3gDa_0_0_2018072417",
			wantUsername: "D39564861q3gDa",
		},
		{
			name: "huawei ClientId, timestamp unchecked, issued at UTC-5",
			source: "Huawei Cloud IoTDP docs, MQTT CONNECT authentication (support.huaweicloud.com/qs-iotps/iot_03_0003.html): " +
				"example ClientId 5f052ac562369102d42b0fb6_0_0_2019122614",
			req: Request{Cloud: "huawei", Params: map[string]any{"deviceId": "5f052ac562369102d42b0fb6", "checkTimestamp": false},
				Secret: "12345678", Now: time.Date(2019, 12, 26, 9, 30, 0, 0, time.FixedZone("UTC-5", -5*3600))},
			wantClientID: "5f052ac562369102d42b0fb6_0_0_2019122614",
			wantUsername: "5f052ac562369102d42b0fb6",
		},
		{
			name: "huawei password, issued at UTC-4 the previous local day",
			source: "Huawei Cloud docs, device connection authentication (support.huaweicloud.com/devg-ocsmartcampus/ocsmartcampus_04_0030.html): " +
				"secret 12345678, timestamp 2025041401 -> c75150e6...",
			req: Request{Cloud: "huawei", Params: map[string]any{"deviceId": "dev_1"},
				Secret: "12345678", Now: time.Date(2025, 4, 13, 21, 15, 0, 0, time.FixedZone("UTC-4", -4*3600))},
			wantClientID: "dev_1_0_1_2025041401",
			wantUsername: "dev_1",
			wantPassword: "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a",
			wantExpires:  time.Date(2025, 4, 14, 2, 0, 0, 0, time.UTC).Unix(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Sign(tt.req)
			if err != nil {
				t.Fatalf("Sign: %v (%s)", err, tt.source)
			}
			if c.ClientID != tt.wantClientID {
				t.Errorf("clientId = %q, want %q (%s)", c.ClientID, tt.wantClientID, tt.source)
			}
			if tt.wantUsername != "" && c.Username != tt.wantUsername {
				t.Errorf("username = %q, want %q (%s)", c.Username, tt.wantUsername, tt.source)
			}
			if tt.wantPassword != "" && c.Password != tt.wantPassword {
				t.Errorf("password = %q\nwant       %q (%s)", c.Password, tt.wantPassword, tt.source)
			}
			if tt.wantExpires != 0 && (c.ExpiresAt == nil || c.ExpiresAt.Unix() != tt.wantExpires) {
				t.Errorf("expiresAt = %v, want Unix %d (%s)", c.ExpiresAt, tt.wantExpires, tt.source)
			}
		})
	}
}
