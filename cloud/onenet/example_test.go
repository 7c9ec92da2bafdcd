package onenet_test

import (
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/onenet"
)

// Signing the inputs of OneNET's published token example (docs/clouds.md, "onenet").
func Example() {
	reg := cloud.NewRegistry(onenet.New())
	c, err := reg.Sign(cloud.Request{Cloud: "onenet", Params: map[string]any{"productId": "123123", "deviceName": "dev1", "signMethod": "sha1", "keyScope": "product"},
		Secret: "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw=", Now: time.Unix(1537255523-3600, 0)})
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
	// dev1
	// 123123
	// version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D
	// mqtts.heclouds.com:1883 tls=false
	// $sys/123123/dev1/thing/property/post
}
