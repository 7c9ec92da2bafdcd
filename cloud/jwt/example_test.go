package jwt_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/jwt"
)

// Signing a token for a self-hosted broker (docs/clouds.md, "jwt"), with
// the Ed25519 key of RFC 8037 Appendix A and a fixed jti, so that the
// token is the same on every run.
func Example() {
	seed := []byte{0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
		0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60}
	key, err := cloud.NewTokenKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := cloud.NewRegistry(jwt.Backend{})
	c, err := reg.Sign(cloud.Request{Cloud: "jwt", DeviceID: "lamp-7", Params: map[string]any{"host": "emqx.example"},
		TokenKey: key, Issuer: "https://credsign.example", Now: time.Unix(1700000000, 0), Rand: bytes.NewReader(make([]byte, 16))})
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
	// lamp-7
	// lamp-7
	// eyJhbGciOiJFZERTQSIsImtpZCI6ImtQcktfcW14VldhWVZBOXd3QkY2SXVvM3ZWeno3VHhIQ1R3WEJ5Z3JTNGsiLCJ0eXAiOiJKV1QifQ.eyJleHAiOjE3MDAwMDM2MDAsImlhdCI6MTcwMDAwMDAwMCwiaXNzIjoiaHR0cHM6Ly9jcmVkc2lnbi5leGFtcGxlIiwianRpIjoiQUFBQUFBQUFBQUFBQUFBQUFBQUFBQSIsIm5iZiI6MTcwMDAwMDAwMCwic3ViIjoibGFtcC03In0.poAXjP07JsVQdEZJy4-3phcfBm1wX2lwfWTPSISq_RqtU4Gz5GxMhle0W5oxAa-gXCm3v12QYdNS2ohoYPwXDQ
	// emqx.example:8883 tls=true
	// devices/lamp-7/telemetry
}
