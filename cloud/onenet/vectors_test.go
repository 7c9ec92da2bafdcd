package onenet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/cloudtest"
	"github.com/credsign/credsign/cloud/onenet"
)

// TestOneNETVendorVectors checks OneNET's published token vector.
func TestOneNETVendorVectors(t *testing.T) {
	// Source: OneNET Studio docs, "Token algorithm" (token算法) example, as in
	// docs/clouds.md: key KuF3NT..., res products/123123, et 1537255523, sha1.
	const want = "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D"
	c := mustSign(t, cloud.Request{Cloud: "onenet", Params: map[string]any{"productId": "123123", "deviceName": "dev1", "signMethod": "sha1", "keyScope": "product"},
		Secret: "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw=", Now: time.Unix(1537255523-3600, 0), TTL: time.Hour})
	if c.Password != want {
		t.Errorf("password = %s\nwant       %s", c.Password, want)
	}
	if c.ClientID != "dev1" || c.Username != "123123" || c.Host != "mqtts.heclouds.com" || c.Port != 1883 || c.TLS {
		t.Errorf("clientId, username, address = %q %q %s:%d tls=%v", c.ClientID, c.Username, c.Host, c.Port, c.TLS)
	}
	if !c.ExpiryEnforced || c.ExpiresAt == nil || c.ExpiresAt.Unix() != 1537255523 {
		t.Errorf("expiry = %v enforced %v, want et 1537255523 enforced", c.ExpiresAt, c.ExpiryEnforced)
	}
	if c.Topics.Telemetry != "$sys/123123/dev1/thing/property/post" || c.Topics.Commands != "$sys/123123/dev1/thing/property/set" {
		t.Errorf("topics = %+v", c.Topics)
	}

	// Source: ALIENTEK (正点原子) "lwIP+OneNET+MQTT" demo, lwip_demo.h: a token
	// made with OneNET's token tool for product 8q4Ad1z2jn and its access key.
	c = mustSign(t, cloud.Request{Cloud: "onenet", Params: map[string]any{"productId": "8q4Ad1z2jn", "deviceName": "MY_MQTT", "signMethod": "sha1", "keyScope": "product"},
		Secret: "s6W5Qf29VVc1gaUfA5VBt+XZbyPBC/Wpk7Ntf7vNE0E=", Now: time.Unix(1893456000-600, 0), TTL: 10 * time.Minute})
	if want := "version=2018-10-31&res=products%2F8q4Ad1z2jn&et=1893456000&method=sha1&sign=vw2LFxZMrYawijQhxQRSJ3aC4CQ%3D"; c.Password != want {
		t.Errorf("password = %s\nwant       %s", c.Password, want)
	}
}

// Example signs the inputs of OneNET's published token example (docs/clouds.md, "onenet").
func Example() {
	c, err := cloud.NewRegistry(onenet.Backend{}).Sign(cloud.Request{Cloud: "onenet", Params: map[string]any{"productId": "123123", "deviceName": "dev1", "signMethod": "sha1", "keyScope": "product"}, Secret: "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw=", Now: time.Unix(1537255523-3600, 0)})
	fmt.Println(c.Password, c.Host, err)
	// Output: version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D mqtts.heclouds.com <nil>
}

// mustSign signs req with this cloud alone.
func mustSign(t *testing.T, req cloud.Request) cloud.Credentials {
	return cloudtest.MustSign(t, reg, req)
}

var reg = cloud.NewRegistry(onenet.Backend{})
