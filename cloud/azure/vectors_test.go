package azure_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/azure"
	"github.com/credsign/credsign/cloud/cloudtest"
)

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
	c := mustSign(t, cloud.Request{Cloud: "azure", Params: map[string]any{"hubHost": "myiothub.azure-devices.net", "deviceId": "my_device"},
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
	c := mustSign(t, cloud.Request{Cloud: "azure", Params: map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "d1", "moduleId": "m1", "policyName": "registryReadWrite"},
		Secret: key, Now: time.Unix(1000, 0), TTL: 10 * time.Second})
	sr := "h.azure-devices.net%2Fdevices%2Fd1%2Fmodules%2Fm1"
	want := "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(azureSig(kb, []byte(sr+"\n1010"))) + "&se=1010&skn=registryReadWrite"
	if c.Password != want || c.ClientID != "d1/m1" || c.Username != "h.azure-devices.net/d1/m1/?api-version=2021-04-12" {
		t.Errorf("got %q %q %q\nwant password %q", c.Password, c.ClientID, c.Username, want)
	}
}

// azureSig is b64(HMAC-SHA256(key, msg)), the signature of a SAS token.
func azureSig(key, msg []byte) string {
	return base64.StdEncoding.EncodeToString(hmacSHA256(key, msg))
}

// hmacSHA256 is HMAC-SHA256 by crypto/hmac, as the test was written.
func hmacSHA256(key, msg []byte) []byte { return cloudtest.HMAC(sha256.New, key, msg) }

// Example signs the device of Microsoft's SAS example (docs/clouds.md, "azure").
func Example() {
	c, err := cloud.NewRegistry(azure.Backend{}).Sign(cloud.Request{Cloud: "azure", Params: map[string]any{"hubHost": "myiothub.azure-devices.net", "deviceId": "my_device"}, Secret: "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=", Now: time.Unix(1700000000, 0)})
	fmt.Println(c.Password, err)
	// Output: SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device&sig=7ya4p0GKB4cPBFx3ayVL%2BqKGQKhpd4UYCcqy1C8%2Bba4%3D&se=1700003600 <nil>
}

// mustSign signs req with this cloud alone.
func mustSign(t *testing.T, req cloud.Request) cloud.Credentials {
	return cloudtest.MustSign(t, reg, req)
}

var reg = cloud.NewRegistry(azure.Backend{})
