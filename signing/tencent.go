package signing

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"
)

// Tencent Cloud IoT Hub and IoT Explorer (clouds.md, "tencent").
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
			{Name: "connId", Type: TypeString, Description: "Connection id in the username; random 5 alphanumeric characters per issue when absent.", check: checkConnID},
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
	if len(s) > 32 {
		return fmt.Errorf("must be at most 32 characters")
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
	clientID := productID + dn
	expiry := in.expiry()

	buf := make([]byte, 0, 96)
	buf = append(buf, clientID...)
	buf = append(buf, ';')
	buf = append(buf, sdkAppID...)
	buf = append(buf, ';')
	buf = append(buf, connID...)
	buf = append(buf, ';')
	buf = strconv.AppendInt(buf, expiry, 10)
	username := string(buf)

	key, _ := base64.StdEncoding.DecodeString(in.secret) // checked by checkSecret
	newHash := sha256.New
	if method == "hmacsha1" {
		newHash = func() hash.Hash { return sha1.New() }
	}
	mac := hmac.New(newHash, key)
	mac.Write(buf)
	var sum [sha256.Size]byte
	digest := mac.Sum(sum[:0])
	pw := make([]byte, hex.EncodedLen(len(digest)), hex.EncodedLen(len(digest))+1+len(method))
	hex.Encode(pw, digest)
	pw = append(pw, ';')
	pw = append(pw, method...)
	password := string(pw)

	exp := in.now.Add(in.ttl).Truncate(time.Second)
	if in.trace.on() {
		t := in.trace
		t.add("clientId", "productId + deviceName, no separator: %s", clientID)
		t.add("expiry", "expiry time in Unix seconds (issue time + ttl %s): %d; the platform enforces it", in.ttl, expiry)
		t.add("username", "clientId;sdkAppId;connId;expiry: %s", username)
		t.add("content", "string signed: the username, %q", username)
		t.add("key", "%s", base64KeyNote(in.secret))
		t.add("algorithm", "%s", hmacName(method))
		t.add("password", "lowercase hex of the HMAC + \";%s\": %s", method, password)
	}
	host := p.str("host", "")
	if host == "" {
		host = productID + ".iotcloud.tencentdevices.com"
	}
	return Credentials{
		DeviceID:       dn,
		ClientID:       clientID,
		Username:       username,
		Password:       password,
		Host:           host,
		Port:           p.int("port", 1883),
		TLS:            false,
		ExpiresAt:      &exp,
		ExpiryEnforced: true,
	}, nil
}
