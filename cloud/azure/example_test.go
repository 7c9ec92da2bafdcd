package azure_test

import (
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/azure"
)

// Signing the device of Microsoft's SAS example (docs/clouds.md, "azure").
func Example() {
	reg := cloud.NewRegistry(azure.New())
	c, err := reg.Sign(cloud.Request{Cloud: "azure", Params: map[string]any{"hubHost": "myiothub.azure-devices.net", "deviceId": "my_device"},
		Secret: "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=", Now: time.Unix(1700000000, 0)})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.ClientID)
	fmt.Println(c.Username)
	fmt.Println(c.Password)
	fmt.Printf("%s:%d tls=%v\n", c.Host, c.Port, c.TLS)
	fmt.Println(c.Topics.Telemetry)
	// Output:
	// my_device
	// myiothub.azure-devices.net/my_device/?api-version=2021-04-12
	// SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device&sig=7ya4p0GKB4cPBFx3ayVL%2BqKGQKhpd4UYCcqy1C8%2Bba4%3D&se=1700003600
	// myiothub.azure-devices.net:8883 tls=true
	// devices/my_device/messages/events/
}
