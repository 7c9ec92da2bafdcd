package signing

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Tencent Cloud IoT Hub and IoT Explorer (docs/clouds.md, "tencent").
func init() {
	register(&Cloud{
		Name:         "tencent",
		Title:        "Tencent Cloud IoT Hub / IoT Explorer",
		SecretFormat: SecretBase64,
		Params: []ParamSpec{
			{Name: "productId", Type: TypeString, Required: true, Description: "ProductId of the device's product.", check: forbid(";", "it delimits the username")},
			{Name: "deviceName", Type: TypeString, Required: true, Description: "DeviceName.", check: forbid(";", "it delimits the username")},
			{Name: "signMethod", Type: TypeString, Default: "hmacsha256", Allowed: []any{"hmacsha256", "hmacsha1"}, Description: "HMAC used for the password."},
			{Name: "sdkAppId", Type: TypeString, Default: "12010126", Description: "SDK application id in the username (the official SDKs send 21010406; both are accepted).", check: checkDigits},
			{Name: "connId", Type: TypeString, Description: "Connection id in the username: 5 letters or digits; random per issue when absent.", check: checkConnID},
			hostParam("Broker host (default ${productId}.iotcloud.tencentdevices.com)."),
			portParam("Broker port (default 1883: HMAC passwords are checked on plain TCP)."),
		},
		recipe: tencent,
	})
}

func checkDigits(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("must be decimal digits")
		}
	}
	return nil
}

func checkConnID(s string) error {
	if len(s) != 5 {
		return fmt.Errorf("must be 5 characters, as the Tencent docs specify")
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return fmt.Errorf("must be letters and digits only")
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
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

func tencent(in input) (Credentials, error) {
	p := in.params
	productID := p.str("productId", "")
	dn := p.str("deviceName", "")
	method := p.str("signMethod", "hmacsha256")
	sdkAppID := p.str("sdkAppId", "12010126")
	connID := p.str("connId", "")
	if connID == "" {
		var err error
		if connID, err = randomConnID(in.rand, 5); err != nil {
			return Credentials{}, err
		}
	}
	expiry := in.expiry()

	alg := macSHA256
	if method == "hmacsha1" {
		alg = macSHA1
	}

	// One buffer holds the HMAC's pad, the username (the message signed), the
	// MAC and the output strings; for usual lengths it stays on the stack.
	var arr [1024]byte
	buf := append(arr[:macBlock], productID...)
	buf = append(buf, dn...)
	buf = append(buf, ';')
	buf = append(buf, sdkAppID...)
	buf = append(buf, ';')
	buf = append(buf, connID...)
	buf = append(buf, ';')
	buf = strconv.AppendInt(buf, expiry, 10)
	username := buf[macBlock:]
	digest := hmacPadded(alg, in.key, buf, buf[len(buf):])

	exp := time.Unix(expiry, 0).UTC()
	c := Credentials{DeviceID: dn, Port: p.int("port", 1883), ExpiresAt: &exp, ExpiryEnforced: true}
	o := outBuf{b: digest[len(digest):]}
	o = o.add(productID, dn)
	o.b = append(o.b, username...)
	o.mark()
	o.b = hex.AppendEncode(o.b, digest)
	o = o.add(";", method)
	o.b = appendHost(o.b, p.str("host", ""), productID, ".iotcloud.tencentdevices.com")
	o.mark()
	// Topics: the product's default topic categories and the device shadow.
	o = o.add(productID, "/", dn, "/event")
	o = o.add(productID, "/", dn, "/control")
	o = o.add("$shadow/operation/", productID, "/", dn)
	o = o.add("$shadow/operation/result/", productID, "/", dn)
	o.fillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.ShadowUpdate, &c.Topics.ShadowDelta)

	if in.trace.on() {
		t := in.trace
		t.add("clientId", "productId + deviceName, no separator: %s", c.ClientID)
		t.add("expiry", "expiry time in Unix seconds (issue time + ttl %s): %d; the platform enforces it", in.ttl, expiry)
		t.add("username", "clientId;sdkAppId;connId;expiry: %s", c.Username)
		t.add("content", "string signed: the username, %q", c.Username)
		t.add("key", "%s", base64KeyNote(in.secret))
		t.add("algorithm", "%s", hmacName(method))
		t.add("password", "lowercase hex of the HMAC + \";%s\": %s", method, c.Password)
	}
	return c, nil
}
