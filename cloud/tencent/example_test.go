package tencent_test

import (
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/tencent"
)

// Signing a device of Tencent Cloud IoT Hub (docs/clouds.md, "tencent"), with its connId pinned.
func Example() {
	reg := cloud.NewRegistry(tencent.New())
	c, err := reg.Sign(cloud.Request{Cloud: "tencent", Params: map[string]any{"productId": "PID1234567", "deviceName": "dev1", "connId": "mYsTr"},
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
	// PID1234567dev1
	// PID1234567dev1;12010126;mYsTr;1700003600
	// a0128fef3a18be1ca25db196d08edbb247f9b70aa04531882d4602ed51245c70;hmacsha256
	// PID1234567.iotcloud.tencentdevices.com:1883 tls=false
	// PID1234567/dev1/event
}
