package signing

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"unicode/utf8"
)

// Alibaba Cloud IoT Platform, one secret per device (clouds.md, "aliyun").
func init() {
	register(&Cloud{
		Name:         "aliyun",
		Title:        "Alibaba Cloud IoT Platform",
		SecretFormat: SecretText,
		Params: []ParamSpec{
			{Name: "productKey", Type: TypeString, Required: true, Description: "ProductKey of the device's product.", check: forbid("&|", "it is part of the username and ClientId")},
			{Name: "deviceName", Type: TypeString, Required: true, Description: "DeviceName.", check: forbid("&|", "it is part of the username and ClientId")},
			{Name: "clientId", Type: TypeString, Description: "Client id of at most 64 characters, without '|'; defaults to productKey.deviceName.", check: checkAliyunClientID},
			{Name: "signMethod", Type: TypeString, Default: "hmacsha256", Allowed: []any{"hmacsha256", "hmacsha1", "hmacmd5"}, Description: "HMAC used for the password."},
			{Name: "secureMode", Type: TypeInteger, Default: 2, Allowed: []any{2, 3}, Description: "2 for TLS, 3 for plain TCP."},
			{Name: "regionId", Type: TypeString, Default: "cn-shanghai", Description: "Region of a legacy public instance; used in its host name.", check: forbid(".", "it is a label of the host name")},
			{Name: "instanceId", Type: TypeString, Description: "Instance id of a new public or enterprise instance; when set the host is ${instanceId}.mqtt.iothub.aliyuncs.com.", check: forbid(".", "it is a label of the host name")},
			hostParam("Broker host; overrides the host derived from instanceId or productKey and regionId."),
			portParam("Broker port (default 1883, for TLS and plain TCP alike)."),
		},
		recipe: aliyun,
	})
}

func checkAliyunClientID(s string) error {
	if n := utf8.RuneCountInString(s); n > 64 {
		return fmt.Errorf("must be at most 64 characters, not %d", n)
	}
	return forbid("|", "it delimits the ClientId's parameters")(s)
}

func aliyun(in input) (Credentials, error) {
	p := in.params
	pk := p.str("productKey", "")
	dn := p.str("deviceName", "")
	clientID := p.str("clientId", "")
	if clientID == "" {
		clientID = pk + "." + dn
		if err := checkAliyunClientID(clientID); err != nil {
			return Credentials{}, invalid("params.clientId", "default productKey.deviceName %s; set clientId", err.Error())
		}
	}
	method := p.str("signMethod", "hmacsha256")
	mode := p.int("secureMode", 2)

	var ts [20]byte
	timestamp := strconv.AppendInt(ts[:0], in.now.UnixMilli(), 10)

	buf := make([]byte, 0, 128)
	buf = append(buf, "clientId"...)
	buf = append(buf, clientID...)
	buf = append(buf, "deviceName"...)
	buf = append(buf, dn...)
	buf = append(buf, "productKey"...)
	buf = append(buf, pk...)
	buf = append(buf, "timestamp"...)
	buf = append(buf, timestamp...)

	var newHash func() hash.Hash
	switch method {
	case "hmacsha1":
		newHash = sha1.New
	case "hmacmd5":
		newHash = md5.New
	default:
		newHash = sha256.New
	}
	mac := hmac.New(newHash, []byte(in.secret))
	mac.Write(buf)
	var sum [sha256.Size]byte
	password := hex.EncodeToString(mac.Sum(sum[:0]))
	if in.trace.on() {
		t := in.trace
		t.add("timestamp", "issue time in milliseconds since the epoch: %s", timestamp)
		t.add("content", "string signed (param names sorted, name then value, no separators; signmethod and securemode are not signed): %q", buf)
		t.add("key", "deviceSecret as its raw UTF-8 bytes, not decoded: %s", redacted(in.secret))
		t.add("algorithm", "%s, named in the ClientId as signmethod=%s", hmacName(method), method)
		t.add("password", "lowercase hex of the HMAC (the platform accepts either case): %s", password)
	}

	buf = buf[:0]
	buf = append(buf, clientID...)
	buf = append(buf, "|securemode="...)
	buf = strconv.AppendInt(buf, int64(mode), 10)
	buf = append(buf, ",signmethod="...)
	buf = append(buf, method...)
	buf = append(buf, ",timestamp="...)
	buf = append(buf, timestamp...)
	buf = append(buf, '|')
	mqttClientID := string(buf)
	username := dn + "&" + pk
	if in.trace.on() {
		t := in.trace
		t.add("clientId", "clientId + \"|securemode=M,signmethod=S,timestamp=T|\" (securemode 2 = TLS, 3 = plain TCP): %s", mqttClientID)
		t.add("username", "deviceName + \"&\" + productKey: %s", username)
		t.add("expiry", "none: the platform does not check the timestamp; the triple is valid until the secret changes")
	}

	host := p.str("host", "")
	if host == "" {
		if inst := p.str("instanceId", ""); inst != "" {
			host = inst + ".mqtt.iothub.aliyuncs.com"
		} else {
			host = pk + ".iot-as-mqtt." + p.str("regionId", "cn-shanghai") + ".aliyuncs.com"
		}
	}
	return Credentials{
		DeviceID: dn,
		ClientID: mqttClientID,
		Username: username,
		Password: password,
		Host:     host,
		Port:     p.int("port", 1883),
		TLS:      mode == 2,
	}, nil
}

func hmacName(method string) string {
	switch method {
	case "hmacsha1":
		return "HMAC-SHA1"
	case "hmacmd5":
		return "HMAC-MD5"
	}
	return "HMAC-SHA256"
}
