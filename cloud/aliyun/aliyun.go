package signing

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Alibaba Cloud IoT Platform, one secret per device (docs/clouds.md, "aliyun").
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
	alg := macSHA256
	switch method {
	case "hmacsha1":
		alg = macSHA1
	case "hmacmd5":
		alg = macMD5
	}

	// One buffer holds the HMAC's pad, the content, the MAC and the output
	// strings; for usual lengths it stays on the stack.
	var arr [1024]byte
	buf := append(arr[:macBlock], "clientId"...)
	buf = append(buf, clientID...)
	buf = append(buf, "deviceName"...)
	buf = append(buf, dn...)
	buf = append(buf, "productKey"...)
	buf = append(buf, pk...)
	buf = append(buf, "timestamp"...)
	tsStart := len(buf)
	buf = strconv.AppendInt(buf, in.now.UnixMilli(), 10)
	timestamp := buf[tsStart:]
	content := buf[macBlock:]
	digest := hmacPadded(alg, in.key, buf, buf[len(buf):])

	c := Credentials{DeviceID: dn, Port: p.int("port", 1883), TLS: mode == 2}
	o := outBuf{b: digest[len(digest):]}
	o.b = append(o.b, clientID...)
	o.b = append(o.b, "|securemode="...)
	o.b = strconv.AppendInt(o.b, int64(mode), 10)
	o.b = append(o.b, ",signmethod="...)
	o.b = append(o.b, method...)
	o.b = append(o.b, ",timestamp="...)
	o.b = append(o.b, timestamp...)
	o.b = append(o.b, '|')
	o.mark()
	o.b = append(o.b, dn...)
	o.b = append(o.b, '&')
	o.b = append(o.b, pk...)
	o.mark()
	o.b = hex.AppendEncode(o.b, digest)
	o.mark()
	if host, inst := p.str("host", ""), p.str("instanceId", ""); host == "" && inst != "" {
		o.b = appendJoin(o.b, inst, ".mqtt.iothub.aliyuncs.com")
	} else {
		o.b = appendHost(o.b, host, pk, ".iot-as-mqtt.", p.str("regionId", "cn-shanghai"), ".aliyuncs.com")
	}
	o.mark()
	// Topics: the product's default custom topics and the Alink property topics.
	o = o.add("/", pk, "/", dn, "/user/update")
	o = o.add("/", pk, "/", dn, "/user/get")
	o = o.add("/sys/", pk, "/", dn, "/thing/event/property/post")
	o = o.add("/sys/", pk, "/", dn, "/thing/event/property/post_reply")
	o = o.add("/sys/", pk, "/", dn, "/thing/service/property/set")
	o.fillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.PropertyReport, &c.Topics.PropertyReply, &c.Topics.PropertySet)

	if in.trace.on() {
		t := in.trace
		t.add("timestamp", "issue time in milliseconds since the epoch: %d", in.now.UnixMilli())
		t.add("content", "string signed (param names sorted, name then value, no separators; signmethod and securemode are not signed): %q", string(content))
		t.add("key", "deviceSecret as its raw UTF-8 bytes, not decoded: %s", redacted(in.secret))
		t.add("algorithm", "%s, named in the ClientId as signmethod=%s", hmacName(method), method)
		t.add("password", "lowercase hex of the HMAC (the platform accepts either case): %s", c.Password)
		t.add("clientId", "clientId + \"|securemode=M,signmethod=S,timestamp=T|\" (securemode 2 = TLS, 3 = plain TCP): %s", c.ClientID)
		t.add("username", "deviceName + \"&\" + productKey: %s", c.Username)
		t.add("expiry", "none: the platform does not check the timestamp; the triple is valid until the secret changes")
	}
	return c, nil
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
