package huawei_test

import (
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/huawei"
)

// Signing a device of Huawei Cloud IoTDA (docs/clouds.md, "huawei").
func Example() {
	reg := cloud.NewRegistry(huawei.New())
	c, err := reg.Sign(cloud.Request{Cloud: "huawei", Params: map[string]any{"deviceId": "dev_1"},
		Secret: "12345678", Now: time.Date(2019, 12, 4, 9, 30, 0, 0, time.UTC)})
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
	// dev_1_0_1_2019120409
	// dev_1
	// dc089b6d4b3adbe3265343ed55f6aeae096b87c81c563a3d88b208bf06820e91
	// iot-mqtts.cn-north-4.myhuaweicloud.com:8883 tls=true
	// $oc/devices/dev_1/sys/messages/up
}
