package aws_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/aws"
)

// Signing for an AWS IoT Core custom authorizer (docs/clouds.md, "aws";
// docs/aws.md): the device's secret is the authorizer's token-signing key,
// the token is signed with the server's token key. Both keys are made
// here, so only the parts that do not depend on them are printed.
func Example() {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		fmt.Println(err)
		return
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rk)
	secret := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	key, err := cloud.GenerateTokenKey(cloud.AlgES256)
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := cloud.NewRegistry(aws.Backend{})
	c, err := reg.Sign(cloud.Request{Cloud: "aws", DeviceID: "lamp-7",
		Params: map[string]any{"endpoint": "abc-ats.iot.eu-west-1.amazonaws.com", "authorizerName": "credsign"},
		Secret: secret, TokenKey: key, Issuer: "https://credsign.example", Now: time.Unix(1700000000, 0)})
	if err != nil {
		fmt.Println(err)
		return
	}
	user, _, _ := strings.Cut(c.Username, "&x-amz-customauthorizer-signature=")
	fmt.Println(c.ClientID)
	fmt.Println(user)
	fmt.Printf("%s:%d tls=%v alpn=%s\n", c.Host, c.Port, c.TLS, c.ALPN)
	fmt.Println(c.ExpiresAt.Format(time.RFC3339))
	// Output:
	// lamp-7
	// lamp-7?x-amz-customauthorizer-name=credsign
	// abc-ats.iot.eu-west-1.amazonaws.com:443 tls=true alpn=mqtt
	// 2023-11-14T23:13:20Z
}
