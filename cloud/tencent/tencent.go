package tencent

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/credsign/credsign/cloud"
)

// Backend is Tencent Cloud IoT Hub and IoT Explorer (docs/clouds.md, "tencent").
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "tencent",
		Title:        "Tencent Cloud IoT Hub / IoT Explorer",
		SecretFormat: cloud.SecretBase64,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("productId", "ProductId of the device's product.", inUsername),
			cloud.RequiredParam("deviceName", "DeviceName.", inUsername),
			cloud.EnumParam("signMethod", "HMAC used for the password.", "hmacsha256", "hmacsha1"),
			cloud.StringParam("sdkAppId", "12010126", "SDK application id in the username (the official SDKs send 21010406; both are accepted).", checkDigits),
			cloud.StringParam("connId", "", "Connection id in the username: 5 letters or digits; random per issue when absent.", CheckConnID),
			cloud.HostParam("Broker host (default ${productId}.iotcloud.tencentdevices.com)."),
			cloud.PortParam("Broker port (default 1883: HMAC passwords are checked on plain TCP)."),
		},
		Recipe: tencent,
	}
}

// inUsername refuses what would break the username's fields.
var inUsername = cloud.Forbid(";", "it delimits the username")

func checkDigits(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("must be decimal digits")
		}
	}
	return nil
}

// CheckConnID checks a connId: 5 letters or digits.
func CheckConnID(s string) error {
	if len(s) != 5 {
		return fmt.Errorf("must be 5 characters, as the Tencent docs specify")
	}
	for i := 0; i < len(s); i++ {
		if !cloud.IsAlnum(s[i]) {
			return fmt.Errorf("must be letters and digits only")
		}
	}
	return nil
}

const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomConnID returns n alphanumeric characters drawn uniformly from r.
func randomConnID(r io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	var b [16]byte
	for len(out) < n {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("signing: read random connId: %w", err)
		}
		for _, c := range b {
			// 248 = 4*62: rejecting larger bytes keeps the draw uniform.
			if c < 248 && len(out) < n {
				out = append(out, alnum[c%62])
			}
		}
	}
	return string(out), nil
}

func tencent(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	productID := p.Str("productId", "")
	dn := p.Str("deviceName", "")
	method := p.Str("signMethod", "hmacsha256")
	sdkAppID := p.Str("sdkAppId", "12010126")
	connID := p.Str("connId", "")
	if connID == "" {
		var err error
		if connID, err = randomConnID(in.Rand, 5); err != nil {
			return cloud.Credentials{}, err
		}
	}
	expiry := in.Expiry()

	alg := cloud.MACSHA256
	if method == "hmacsha1" {
		alg = cloud.MACSHA1
	}

	// One buffer holds the HMAC's pad, the username (the message signed), the
	// MAC and the output strings; for usual lengths it stays on the stack.
	var arr [1024]byte
	buf := append(arr[:cloud.MACBlock], productID...)
	buf = append(buf, dn...)
	buf = append(buf, ';')
	buf = append(buf, sdkAppID...)
	buf = append(buf, ';')
	buf = append(buf, connID...)
	buf = append(buf, ';')
	buf = strconv.AppendInt(buf, expiry, 10)
	username := buf[cloud.MACBlock:]
	digest := cloud.HMACPadded(alg, in.Key, buf, buf[len(buf):])

	exp := time.Unix(expiry, 0).UTC()
	c := cloud.Credentials{DeviceID: dn, Port: p.Int("port", 1883), ExpiresAt: &exp, ExpiryEnforced: true}
	o := cloud.OutBuf{B: digest[len(digest):]}
	o = o.Add(productID, dn)
	o.B = append(o.B, username...)
	o.Mark()
	o.B = hex.AppendEncode(o.B, digest)
	o = o.Add(";", method)
	o.B = cloud.AppendHost(o.B, p.Str("host", ""), productID, ".iotcloud.tencentdevices.com")
	o.Mark()
	// Topics: the product's default topic categories and the device shadow.
	o = o.Add(productID, "/", dn, "/event")
	o = o.Add(productID, "/", dn, "/control")
	o = o.Add("$shadow/operation/", productID, "/", dn)
	o = o.Add("$shadow/operation/result/", productID, "/", dn)
	o.FillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.ShadowUpdate, &c.Topics.ShadowDelta)

	if in.Trace.On() {
		t := in.Trace
		t.Add("clientId", "productId + deviceName, no separator: %s", c.ClientID)
		t.Add("expiry", "expiry time in Unix seconds (issue time + ttl %s): %d; the platform enforces it", in.TTL, expiry)
		t.Add("username", "clientId;sdkAppId;connId;expiry: %s", c.Username)
		t.Add("content", "string signed: the username, %q", c.Username)
		t.Add("key", "%s", cloud.Base64KeyNote(in.Secret))
		t.Add("algorithm", "%s", cloud.HMACName(method))
		t.Add("password", "lowercase hex of the HMAC + \";%s\": %s", method, c.Password)
	}
	return c, nil
}
