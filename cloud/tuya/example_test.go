package tuya_test

import (
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/tuya"
)

// Signing Tuya's documented example (docs/clouds.md, "tuya").
func Example() {
	reg := cloud.NewRegistry(tuya.New())
	c, err := reg.Sign(cloud.Request{Cloud: "tuya", Params: map[string]any{"deviceId": "6c95875d0f5ba69607nzfl"},
		Secret: "fb803786602df760", Now: time.Unix(1607635284, 0)})
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
	// tuyalink_6c95875d0f5ba69607nzfl
	// 6c95875d0f5ba69607nzfl|signMethod=hmacSha256,timestamp=1607635284,secureMode=1,accessType=1
	// 9625b57c76e594181b8696c9a7c54d51e3f595c3672991832ed65d89819aae81
	// m1.tuyacn.com:8883 tls=true
	// tylink/6c95875d0f5ba69607nzfl/thing/property/report
}
