package baidu_test

import (
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/baidu"
)

// Signing Baidu's documented example (docs/clouds.md, "baidu").
func Example() {
	reg := cloud.NewRegistry(baidu.New())
	c, err := reg.Sign(cloud.Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"},
		Secret: "ImSeCrEt0I1M2jkl", Now: time.Unix(1583826857, 0)})
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
	// mydevice
	// thingidp@abcd123|mydevice|1583826857|MD5
	// 7f0e63d2c6e122100edde19e34e7df5b
	// abcd123.iot.gz.baidubce.com:1884 tls=true
	// $iot/mydevice/user/telemetry
}
