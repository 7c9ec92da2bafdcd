package signing

import (
	"encoding/hex"
	"strconv"
)

// Baidu AI Cloud IoT Core (docs/clouds.md, "baidu").
func init() {
	register(&Cloud{
		Name:         "baidu",
		Title:        "Baidu AI Cloud IoT Core",
		SecretFormat: SecretText,
		Params: []ParamSpec{
			{Name: "iotCoreId", Type: TypeString, Required: true, Description: "IoTCoreId of the IoT Core instance.", check: forbid("|@.", "it is part of the username and host")},
			{Name: "deviceKey", Type: TypeString, Required: true, Description: "DeviceKey (the device name).", check: forbid("|&", "it is part of the username and of the string hashed")},
			{Name: "signMethod", Type: TypeString, Default: "MD5", Allowed: []any{"MD5", "SHA256"}, Description: "Hash of the password (a plain hash, not an HMAC)."},
			{Name: "clientId", Type: TypeString, Description: "MQTT ClientId (default the deviceKey)."},
			{Name: "region", Type: TypeString, Default: "gz", Description: "Region of the instance; used in its host name.", check: forbid(".", "it is a label of the host name")},
			hostParam("Broker host (default {iotCoreId}.iot.{region}.baidubce.com)."),
			portParam("Broker port (default 1884 with TLS, 1883 without)."),
			{Name: "tls", Type: TypeBoolean, Default: true, Description: "TLS (port 1884) or plain MQTT (port 1883)."},
		},
		recipe: baidu,
	})
}

func baidu(in input) (Credentials, error) {
	p := in.params
	core := p.str("iotCoreId", "")
	dk := p.str("deviceKey", "")
	method := p.str("signMethod", "MD5")
	alg := macMD5
	if method == "SHA256" {
		alg = macSHA256
	}
	tls := p.bool("tls", true)
	port := 1883
	if tls {
		port = 1884
	}
	ts := in.now.Unix()

	// The password is H(deviceKey & timestamp & signMethod deviceSecret).
	var arr [1024]byte
	buf := append(arr[:0], dk...)
	buf = append(buf, '&')
	tsStart := len(buf)
	buf = strconv.AppendInt(buf, ts, 10)
	stamp := buf[tsStart:]
	buf = append(buf, '&')
	buf = append(buf, method...)
	signedLen := len(buf)
	buf = append(buf, in.key...)
	digest := alg.sum(buf[len(buf):], buf)
	clear(buf[signedLen:]) // leave no copy of the secret behind

	c := Credentials{DeviceID: dk, Port: p.int("port", port), TLS: tls}
	o := outBuf{b: digest[len(digest):]}
	o.b = append(o.b, p.str("clientId", dk)...)
	o.mark()
	o.b = appendJoin(o.b, "thingidp@", core, "|", dk, "|")
	o.b = append(o.b, stamp...)
	o = o.add("|", method)
	o.b = hex.AppendEncode(o.b, digest)
	o.mark()
	o.b = appendHost(o.b, p.str("host", ""), core, ".iot.", p.str("region", "gz"), ".baidubce.com")
	o.mark()
	// Topics: credsign's names under the device's namespace, and the shadow.
	o = o.add("$iot/", dk, "/user/telemetry")
	o = o.add("$iot/", dk, "/user/commands")
	o = o.add("$iot/", dk, "/shadow/update/reported")
	o = o.add("$iot/", dk, "/shadow/delta/desired")
	o.fillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.ShadowUpdate, &c.Topics.ShadowDelta)

	if in.trace.on() {
		t := in.trace
		t.add("timestamp", "issue time in Unix seconds: %d (Baidu documents no validity window for it)", ts)
		t.add("username", "thingidp@iotCoreId|deviceKey|timestamp|signMethod: %s", c.Username)
		t.add("content", "string hashed: deviceKey + \"&\" + timestamp + \"&\" + signMethod + deviceSecret = %q + the secret %s", string(arr[:signedLen]), redacted(in.secret))
		t.add("key", "none: a plain %s hash with the secret appended, not an HMAC", method)
		t.add("algorithm", "%s", method)
		t.add("password", "lowercase hex of the hash: %s", c.Password)
		t.add("clientId", "clientId param, else the deviceKey: %s", c.ClientID)
		t.add("expiry", "none enforced: the timestamp may even be left out")
	}
	return c, nil
}
