package signing

import (
	"encoding/hex"
	"strconv"
)

// Tuya, TuyaLink open MQTT protocol (docs/clouds.md, "tuya").
func init() {
	register(&Cloud{
		Name:         "tuya",
		Title:        "Tuya (TuyaLink)",
		SecretFormat: SecretText,
		Params: []ParamSpec{
			{Name: "deviceId", Type: TypeString, Required: true, Description: "Device ID.", check: forbid("|,=/+#", "it is part of the username, the string signed and the topics")},
			{Name: "region", Type: TypeString, Default: "cn", Allowed: []any{"cn", "us", "eu", "in"}, Description: "Data centre; the host is m1.tuya{region}.com."},
			hostParam("Broker host (default m1.tuya{region}.com)."),
			portParam("Broker port (default 8883, TLS)."),
		},
		recipe: tuya,
	})
}

func tuya(in input) (Credentials, error) {
	p := in.params
	id := p.str("deviceId", "")
	ts := in.now.Unix()

	// One buffer holds the HMAC's pad, the content, the MAC and the output.
	var arr [1024]byte
	buf := append(arr[:macBlock], "deviceId="...)
	buf = append(buf, id...)
	buf = append(buf, ",timestamp="...)
	tsStart := len(buf)
	buf = strconv.AppendInt(buf, ts, 10)
	stamp := buf[tsStart:]
	buf = append(buf, ",secureMode=1,accessType=1"...)
	content := buf[macBlock:]
	digest := hmacPadded(macSHA256, in.key, buf, buf[len(buf):])

	c := Credentials{DeviceID: id, Port: p.int("port", 8883), TLS: true}
	o := outBuf{b: digest[len(digest):]}
	o = o.add("tuyalink_", id)
	o.b = appendJoin(o.b, id, "|signMethod=hmacSha256,timestamp=")
	o.b = append(o.b, stamp...)
	o.b = append(o.b, ",secureMode=1,accessType=1"...)
	o.mark()
	o.b = hex.AppendEncode(o.b, digest)
	o.mark()
	o.b = appendHost(o.b, p.str("host", ""), "m1.tuya", p.str("region", "cn"), ".com")
	o.mark()
	// Topics: the TuyaLink thing-model topics.
	o = o.add("tylink/", id, "/thing/property/report")
	o = o.add("tylink/", id, "/thing/property/set")
	o = o.add("tylink/", id, "/thing/action/execute")
	o = o.add("tylink/", id, "/thing/event/trigger")
	o.fillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.Actions, &c.Topics.Events)
	c.Topics.PropertyReport, c.Topics.PropertySet = c.Topics.Telemetry, c.Topics.Commands

	if in.trace.on() {
		t := in.trace
		t.add("timestamp", "issue time in Unix seconds: %d (Tuya documents no validity window)", ts)
		t.add("content", "string signed: %q", string(content))
		t.add("key", "device secret as its raw UTF-8 bytes: %s", redacted(in.secret))
		t.add("algorithm", "HMAC-SHA256")
		t.add("password", "lowercase hex of the HMAC: %s", c.Password)
		t.add("clientId", "\"tuyalink_\" + deviceId: %s", c.ClientID)
		t.add("username", "deviceId|signMethod=hmacSha256,timestamp=T,secureMode=1,accessType=1: %s", c.Username)
		t.add("expiry", "none documented: the triple is valid until the secret changes")
	}
	return c, nil
}
