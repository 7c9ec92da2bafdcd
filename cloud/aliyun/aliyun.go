package aliyun

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/credsign/credsign/cloud"
)

// Backend is Alibaba Cloud IoT Platform, one secret per device (docs/clouds.md, "aliyun").
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "aliyun",
		Title:        "Alibaba Cloud IoT Platform",
		SecretFormat: cloud.SecretText,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("productKey", "ProductKey of the device's product.", inUsername),
			cloud.RequiredParam("deviceName", "DeviceName.", inUsername),
			cloud.StringParam("clientId", "", "Client id of at most 64 characters, without '|'; defaults to productKey.deviceName.", checkAliyunClientID),
			cloud.EnumParam("signMethod", "HMAC used for the password.", "hmacsha256", "hmacsha1", "hmacmd5"),
			cloud.EnumParam("secureMode", "2 for TLS, 3 for plain TCP.", 2, 3),
			cloud.LabelParam("regionId", "cn-shanghai", "Region of a legacy public instance; used in its host name."),
			cloud.LabelParam("instanceId", "", "Instance id of a new public or enterprise instance; when set the host is ${instanceId}.mqtt.iothub.aliyuncs.com."),
			cloud.HostParam("Broker host; overrides the host derived from instanceId or productKey and regionId."),
			cloud.PortParam("Broker port (default 1883, for TLS and plain TCP alike)."),
		},
		Recipe: aliyun,
	}
}

// inUsername refuses what cannot be part of the username and ClientId.
var inUsername = cloud.Forbid("&|", "it is part of the username and ClientId")

func checkAliyunClientID(s string) error {
	if n := utf8.RuneCountInString(s); n > 64 {
		return fmt.Errorf("must be at most 64 characters, not %d", n)
	}
	return cloud.Forbid("|", "it delimits the ClientId's parameters")(s)
}

func aliyun(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	pk := p.Str("productKey", "")
	dn := p.Str("deviceName", "")
	clientID := p.Str("clientId", "")
	if clientID == "" {
		clientID = pk + "." + dn
		if err := checkAliyunClientID(clientID); err != nil {
			return cloud.Credentials{}, cloud.Invalid("params.clientId", "default productKey.deviceName %s; set clientId", err.Error())
		}
	}
	method := p.Str("signMethod", "hmacsha256")
	mode := p.Int("secureMode", 2)
	alg := cloud.MACSHA256
	switch method {
	case "hmacsha1":
		alg = cloud.MACSHA1
	case "hmacmd5":
		alg = cloud.MACMD5
	}

	// One buffer holds the HMAC's pad, the content, the MAC and the output
	// strings; for usual lengths it stays on the stack.
	var arr [1024]byte
	buf := append(arr[:cloud.MACBlock], "clientId"...)
	buf = append(buf, clientID...)
	buf = append(buf, "deviceName"...)
	buf = append(buf, dn...)
	buf = append(buf, "productKey"...)
	buf = append(buf, pk...)
	buf = append(buf, "timestamp"...)
	tsStart := len(buf)
	buf = strconv.AppendInt(buf, in.Now.UnixMilli(), 10)
	timestamp := buf[tsStart:]
	content := buf[cloud.MACBlock:]
	digest := cloud.HMACPadded(alg, in.Key, buf, buf[len(buf):])

	c := cloud.Credentials{DeviceID: dn, Port: p.Int("port", 1883), TLS: mode == 2}
	o := cloud.OutBuf{B: digest[len(digest):]}
	o.B = append(o.B, clientID...)
	o.B = append(o.B, "|securemode="...)
	o.B = strconv.AppendInt(o.B, int64(mode), 10)
	o.B = append(o.B, ",signmethod="...)
	o.B = append(o.B, method...)
	o.B = append(o.B, ",timestamp="...)
	o.B = append(o.B, timestamp...)
	o.B = append(o.B, '|')
	o.Mark()
	o.B = append(o.B, dn...)
	o.B = append(o.B, '&')
	o.B = append(o.B, pk...)
	o.Mark()
	o.B = hex.AppendEncode(o.B, digest)
	o.Mark()
	if host, inst := p.Str("host", ""), p.Str("instanceId", ""); host == "" && inst != "" {
		o.B = cloud.AppendJoin(o.B, inst, ".mqtt.iothub.aliyuncs.com")
	} else {
		o.B = cloud.AppendHost(o.B, host, pk, ".iot-as-mqtt.", p.Str("regionId", "cn-shanghai"), ".aliyuncs.com")
	}
	o.Mark()
	// Topics: the product's default custom topics and the Alink property topics.
	o = o.Add("/", pk, "/", dn, "/user/update")
	o = o.Add("/", pk, "/", dn, "/user/get")
	o = o.Add("/sys/", pk, "/", dn, "/thing/event/property/post")
	o = o.Add("/sys/", pk, "/", dn, "/thing/event/property/post_reply")
	o = o.Add("/sys/", pk, "/", dn, "/thing/service/property/set")
	o.FillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.PropertyReport, &c.Topics.PropertyReply, &c.Topics.PropertySet)

	if in.Trace.On() {
		t := in.Trace
		t.Add("timestamp", "issue time in milliseconds since the epoch: %d", in.Now.UnixMilli())
		t.Add("content", "string signed (param names sorted, name then value, no separators; signmethod and securemode are not signed): %q", string(content))
		t.Add("key", "deviceSecret as its raw UTF-8 bytes, not decoded: %s", cloud.Redacted(in.Secret))
		t.Add("algorithm", "%s, named in the ClientId as signmethod=%s", cloud.HMACName(method), method)
		t.Add("password", "lowercase hex of the HMAC (the platform accepts either case): %s", c.Password)
		t.Add("clientId", "clientId + \"|securemode=M,signmethod=S,timestamp=T|\" (securemode 2 = TLS, 3 = plain TCP): %s", c.ClientID)
		t.Add("username", "deviceName + \"&\" + productKey: %s", c.Username)
		t.Add("expiry", "none: the platform does not check the timestamp; the triple is valid until the secret changes")
	}
	return c, nil
}
