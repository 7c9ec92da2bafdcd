package tuya

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/credsign/credsign/cloud"
)

// tuyaSecretLen is the length of a TuyaLink device secret. Tuya's C SDK
// keys the HMAC with the secret's first 16 bytes whatever its length
// (tuya/tuya-connect-kit-for-mqtt-embedded-c, branch iotcore-develop,
// src/tuyalink_core.c: hmac_sha256_once calls mbedtls_message_digest_hmac
// with keylen 16), while Tuya's "Open MQTT Protocol" document and its
// Java demo key it with the whole secret: the two agree only for the
// 16-character secrets the console issues, so credsign takes only those.
const tuyaSecretLen = 16

func checkTuyaSecret(s string) error {
	if n := utf8.RuneCountInString(s); len(s) != tuyaSecretLen {
		return fmt.Errorf("must be the 16-character device secret the Tuya console shows, not %d characters (Tuya's C SDK keys the HMAC with the first 16 bytes, its documentation with the whole secret: they agree only on 16)", n)
	}
	return nil
}

// RegionParam is the region param of Tuya's protocols (this one and
// cloud/tuyalegacy): one of Tuya's data centres, cn by default, whose name
// is part of the broker's host as desc says.
func RegionParam(desc string) cloud.ParamSpec {
	return cloud.EnumParam("region", desc, "cn", "us", "eu", "in")
}

// Backend is Tuya, TuyaLink open MQTT protocol (docs/clouds.md, "tuya").
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "tuya",
		Title:        "Tuya (TuyaLink)",
		SecretFormat: cloud.SecretText,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("deviceId", "Device ID.", cloud.Forbid("|,=/+#", "it is part of the username, the string signed and the topics")),
			RegionParam("Data centre; the host is m1.tuya{region}.com."),
			cloud.HostParam("Broker host (default m1.tuya{region}.com)."),
			cloud.PortParam("Broker port (default 8883, TLS)."),
		},
		SecretCheck: checkTuyaSecret,
		Recipe:      tuya,
	}
}

func tuya(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	id := p.Str("deviceId", "")
	ts := in.Now.Unix()

	// One buffer holds the HMAC's pad, the content, the MAC and the output.
	var arr [1024]byte
	buf := append(arr[:cloud.MACBlock], "deviceId="...)
	buf = append(buf, id...)
	buf = append(buf, ",timestamp="...)
	tsStart := len(buf)
	buf = strconv.AppendInt(buf, ts, 10)
	stamp := buf[tsStart:]
	buf = append(buf, ",secureMode=1,accessType=1"...)
	content := buf[cloud.MACBlock:]
	digest := cloud.HMACPadded(cloud.MACSHA256, in.Key, buf, buf[len(buf):])

	c := cloud.Credentials{DeviceID: id, Port: p.Int("port", 8883), TLS: true}
	o := cloud.OutBuf{B: digest[len(digest):]}
	o = o.Add("tuyalink_", id)
	o.B = cloud.AppendJoin(o.B, id, "|signMethod=hmacSha256,timestamp=")
	o.B = append(o.B, stamp...)
	o.B = append(o.B, ",secureMode=1,accessType=1"...)
	o.Mark()
	o.B = hex.AppendEncode(o.B, digest)
	o.Mark()
	o.B = cloud.AppendHost(o.B, p.Str("host", ""), "m1.tuya", p.Str("region", "cn"), ".com")
	o.Mark()
	// Topics: the TuyaLink thing-model topics.
	o = o.Add("tylink/", id, "/thing/property/report")
	o = o.Add("tylink/", id, "/thing/property/set")
	o = o.Add("tylink/", id, "/thing/action/execute")
	o = o.Add("tylink/", id, "/thing/event/trigger")
	o.FillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.Actions, &c.Topics.Events)
	c.Topics.PropertyReport, c.Topics.PropertySet = c.Topics.Telemetry, c.Topics.Commands

	if in.Trace.On() {
		t := in.Trace
		t.Add("timestamp", "issue time in Unix seconds: %d (Tuya documents no validity window)", ts)
		t.Add("content", "string signed: %q", string(content))
		t.Add("key", "device secret as its raw UTF-8 bytes: %s", cloud.Redacted(in.Secret))
		t.Add("algorithm", "HMAC-SHA256")
		t.Add("password", "lowercase hex of the HMAC: %s", c.Password)
		t.Add("clientId", "\"tuyalink_\" + deviceId: %s", c.ClientID)
		t.Add("username", "deviceId|signMethod=hmacSha256,timestamp=T,secureMode=1,accessType=1: %s", c.Username)
		t.Add("expiry", "none documented: the triple is valid until the secret changes")
	}
	return c, nil
}
