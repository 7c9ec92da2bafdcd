package baidu

import (
	"encoding/hex"
	"strconv"
	"time"

	"github.com/credsign/credsign/cloud"
)

// baiduSkew is how far Baidu lets the password's timestamp be from its
// clock: "时间戳会与服务器时间判比，最大误差允许10min；若无法保证时间准确性，
// 计算时需传入0进行占位" (the timestamp is compared with the server's time, at
// most 10 min of error; if the time cannot be guaranteed, put 0 in its
// place), Baidu AI Cloud IoT Core docs, "通过MQTT连接及收发消息",
// cloud.baidu.com/doc/IoTCore/s/Akck4811r.
const baiduSkew = 10 * time.Minute

// Backend is Baidu AI Cloud IoT Core (docs/clouds.md, "baidu").
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "baidu",
		Title:        "Baidu AI Cloud IoT Core",
		SecretFormat: cloud.SecretText,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("iotCoreId", "IoTCoreId of the IoT Core instance.", cloud.Forbid("|@.", "it is part of the username and host")),
			cloud.RequiredParam("deviceKey", "DeviceKey (the device name).", cloud.Forbid("|&", "it is part of the username and of the string hashed")),
			cloud.EnumParam("signMethod", "Hash of the password (a plain hash, not an HMAC).", "MD5", "SHA256"),
			cloud.StringParam("clientId", "", "MQTT ClientId (default the deviceKey).", nil),
			cloud.BoolParam("checkTimestamp", true, "Sign with the issue time, which Baidu accepts for 10 minutes either side of its clock; with false sign with the documented timestamp 0, which is never checked and does not expire."),
			cloud.LabelParam("region", "gz", "Region of the instance; used in its host name."),
			cloud.HostParam("Broker host (default {iotCoreId}.iot.{region}.baidubce.com)."),
			cloud.PortParam("Broker port (default 1883 plain, 1884 with tls)."),
			cloud.BoolParam("tls", false, "Plain MQTT on 1883, where Baidu's SDK signs in with a signature password; true for TLS on 1884, which Baidu's SDK uses only with client certificates (a signature password there is unverified)."),
		},
		// With checkTimestamp the triple is accepted for baiduSkew after its
		// timestamp, so no longer lifetime can be honoured.
		MaxTTLFor: func(p cloud.Params) (time.Duration, string) {
			if p.Bool("checkTimestamp", true) {
				return baiduSkew, ": Baidu accepts the timestamp for 10 minutes; checkTimestamp=false signs the never-checked timestamp 0"
			}
			return cloud.LongestTTL, ""
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
	// Port and transport as baidu/iotcore-sdk-java MqttConfigFactory has
	// them: genMD5SignatureMqttConfig and genSHA256SignatureMqttConfig
	// connect to tcp://{iotCoreId}.iot.gz.baidubce.com:1883;
	// ssl://…:1884 is genSSlMqttConfig's, with a client certificate.
	tls := p.Bool("tls", false)
	port := 1883
	if tls {
		port = 1884
	}
	// SignatureGenerator.genUsername and genSignature sign
	// System.currentTimeMillis() / 1000; the docs' never-checked form
	// signs 0 ("mydevice&0&MD5ImSeCrEt0I1M2jkl").
	check := p.Bool("checkTimestamp", true)
	var ts int64
	if check {
		ts = in.Now.Unix()
	}

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
	if check {
		end := time.Unix(ts, 0).Add(baiduSkew).UTC()
		c.ExpiresAt = &end
		c.ExpiryEnforced = true
	}
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
		if check {
			t.Add("timestamp", "issue time in Unix seconds: %d; Baidu accepts it within 10 minutes of its clock", ts)
		} else {
			t.Add("timestamp", "0, the documented placeholder Baidu never checks (checkTimestamp=false)")
		}
		t.Add("username", "thingidp@iotCoreId|deviceKey|timestamp|signMethod: %s", c.Username)
		t.Add("content", "string hashed: deviceKey + \"&\" + timestamp + \"&\" + signMethod + deviceSecret = %q + the secret %s", string(arr[:signedLen]), cloud.Redacted(in.Secret))
		t.Add("key", "none: a plain %s hash with the secret appended, not an HMAC", method)
		t.Add("algorithm", "%s", method)
		t.Add("password", "lowercase hex of the hash: %s", c.Password)
		t.Add("clientId", "clientId param, else the deviceKey: %s", c.ClientID)
		if check {
			t.Add("expiry", "Baidu refuses a CONNECT whose timestamp is more than 10 minutes from its clock: %s; a live session is not cut", c.ExpiresAt.Format(time.RFC3339))
		} else {
			t.Add("expiry", "none: the timestamp 0 is never checked")
		}
		if tls {
			t.Add("transport", "TLS on %d: Baidu's SDK uses port 1884 only with client certificates; a signature password there is unverified", c.Port)
		} else {
			t.Add("transport", "plain MQTT on %d, as Baidu's SDK signs in with a signature password", c.Port)
		}
	}
	return c, nil
}
