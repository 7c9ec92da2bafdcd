package baidu

import (
	"encoding/hex"
	"strconv"

	"github.com/credsign/credsign/cloud"
)

// Backend is Baidu AI Cloud IoT Core (docs/clouds.md, "baidu").
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "baidu",
		Title:        "Baidu AI Cloud IoT Core",
		SecretFormat: cloud.SecretText,
		Params: []cloud.ParamSpec{
			{Name: "iotCoreId", Type: cloud.TypeString, Required: true, Description: "IoTCoreId of the IoT Core instance.", Check: cloud.Forbid("|@.", "it is part of the username and host")},
			{Name: "deviceKey", Type: cloud.TypeString, Required: true, Description: "DeviceKey (the device name).", Check: cloud.Forbid("|&", "it is part of the username and of the string hashed")},
			{Name: "signMethod", Type: cloud.TypeString, Default: "MD5", Allowed: []any{"MD5", "SHA256"}, Description: "Hash of the password (a plain hash, not an HMAC)."},
			{Name: "clientId", Type: cloud.TypeString, Description: "MQTT ClientId (default the deviceKey)."},
			{Name: "region", Type: cloud.TypeString, Default: "gz", Description: "Region of the instance; used in its host name.", Check: cloud.Forbid(".", "it is a label of the host name")},
			cloud.HostParam("Broker host (default {iotCoreId}.iot.{region}.baidubce.com)."),
			cloud.PortParam("Broker port (default 1884 with TLS, 1883 without)."),
			{Name: "tls", Type: cloud.TypeBoolean, Default: true, Description: "TLS (port 1884) or plain MQTT (port 1883)."},
		},
		Recipe: baidu,
	}
}

func baidu(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	core := p.Str("iotCoreId", "")
	dk := p.Str("deviceKey", "")
	method := p.Str("signMethod", "MD5")
	alg := cloud.MACMD5
	if method == "SHA256" {
		alg = cloud.MACSHA256
	}
	tls := p.Bool("tls", true)
	port := 1883
	if tls {
		port = 1884
	}
	ts := in.Now.Unix()

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
	buf = append(buf, in.Key...)
	digest := alg.Sum(buf[len(buf):], buf)
	clear(buf[signedLen:]) // leave no copy of the secret behind

	c := cloud.Credentials{DeviceID: dk, Port: p.Int("port", port), TLS: tls}
	o := cloud.OutBuf{B: digest[len(digest):]}
	o.B = append(o.B, p.Str("clientId", dk)...)
	o.Mark()
	o.B = cloud.AppendJoin(o.B, "thingidp@", core, "|", dk, "|")
	o.B = append(o.B, stamp...)
	o = o.Add("|", method)
	o.B = hex.AppendEncode(o.B, digest)
	o.Mark()
	o.B = cloud.AppendHost(o.B, p.Str("host", ""), core, ".iot.", p.Str("region", "gz"), ".baidubce.com")
	o.Mark()
	// Topics: credsign's names under the device's namespace, and the shadow.
	o = o.Add("$iot/", dk, "/user/telemetry")
	o = o.Add("$iot/", dk, "/user/commands")
	o = o.Add("$iot/", dk, "/shadow/update/reported")
	o = o.Add("$iot/", dk, "/shadow/delta/desired")
	o.FillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.ShadowUpdate, &c.Topics.ShadowDelta)

	if in.Trace.On() {
		t := in.Trace
		t.Add("timestamp", "issue time in Unix seconds: %d (Baidu documents no validity window for it)", ts)
		t.Add("username", "thingidp@iotCoreId|deviceKey|timestamp|signMethod: %s", c.Username)
		t.Add("content", "string hashed: deviceKey + \"&\" + timestamp + \"&\" + signMethod + deviceSecret = %q + the secret %s", string(arr[:signedLen]), cloud.Redacted(in.Secret))
		t.Add("key", "none: a plain %s hash with the secret appended, not an HMAC", method)
		t.Add("algorithm", "%s", method)
		t.Add("password", "lowercase hex of the hash: %s", c.Password)
		t.Add("clientId", "clientId param, else the deviceKey: %s", c.ClientID)
		t.Add("expiry", "none enforced: the timestamp may even be left out")
	}
	return c, nil
}
