package aliyun_test

import (
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/aliyun"
)

// Signing Alibaba Cloud's documented example device (docs/clouds.md, "aliyun").
func Example() {
	reg := cloud.NewRegistry(aliyun.New())
	c, err := reg.Sign(cloud.Request{Cloud: "aliyun", Params: map[string]any{"productKey": "a14Xib5kdYd", "deviceName": "light1983432", "clientId": "SN1928339"},
		Secret: "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq", Now: time.UnixMilli(1528018257135)})
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
	// SN1928339|securemode=2,signmethod=hmacsha256,timestamp=1528018257135|
	// light1983432&a14Xib5kdYd
	// 8109ca350bbcbe1a6a275bfdf312a5817c6ecbb9cc64a1848c35ade9ef48f5e1
	// a14Xib5kdYd.iot-as-mqtt.cn-shanghai.aliyuncs.com:1883 tls=true
	// /a14Xib5kdYd/light1983432/user/update
}
