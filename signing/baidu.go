package signing

import (
	"encoding/hex"
	"strconv"
	"time"
)

// baiduSkew is how far Baidu lets the password's timestamp be from its
// clock: "时间戳会与服务器时间判比，最大误差允许10min；若无法保证时间准确性，
// 计算时需传入0进行占位" (the timestamp is compared with the server's time, at
// most 10 min of error; if the time cannot be guaranteed, put 0 in its
// place), Baidu AI Cloud IoT Core docs, "通过MQTT连接及收发消息",
// cloud.baidu.com/doc/IoTCore/s/Akck4811r.
const baiduSkew = 10 * time.Minute

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
			{Name: "checkTimestamp", Type: TypeBoolean, Default: true, Description: "Sign with the issue time, which Baidu accepts for 10 minutes either side of its clock; with false sign with the documented timestamp 0, which is never checked and does not expire."},
			{Name: "region", Type: TypeString, Default: "gz", Description: "Region of the instance; used in its host name.", check: forbid(".", "it is a label of the host name")},
			hostParam("Broker host (default {iotCoreId}.iot.{region}.baidubce.com)."),
			portParam("Broker port (default 1883 plain, 1884 with tls)."),
			{Name: "tls", Type: TypeBoolean, Default: false, Description: "Plain MQTT on 1883, where Baidu's SDK signs in with a signature password; true for TLS on 1884, which Baidu's SDK uses only with client certificates (a signature password there is unverified)."},
		},
		// With checkTimestamp the triple is accepted for baiduSkew after its
		// timestamp, so no longer lifetime can be honoured.
		maxTTL: func(p params) (time.Duration, string) {
			if p.bool("checkTimestamp", true) {
				return baiduSkew, ": Baidu accepts the timestamp for 10 minutes; checkTimestamp=false signs the never-checked timestamp 0"
			}
			return maxTTL, ""
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
	// Port and transport as baidu/iotcore-sdk-java MqttConfigFactory has
	// them: genMD5SignatureMqttConfig and genSHA256SignatureMqttConfig
	// connect to tcp://{iotCoreId}.iot.gz.baidubce.com:1883;
	// ssl://…:1884 is genSSlMqttConfig's, with a client certificate.
	tls := p.bool("tls", false)
	port := 1883
	if tls {
		port = 1884
	}
	// SignatureGenerator.genUsername and genSignature sign
	// System.currentTimeMillis() / 1000; the docs' never-checked form
	// signs 0 ("mydevice&0&MD5ImSeCrEt0I1M2jkl").
	check := p.bool("checkTimestamp", true)
	var ts int64
	if check {
		ts = in.now.Unix()
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
	buf = append(buf, in.key...)
	digest := alg.sum(buf[len(buf):], buf)
	clear(buf[signedLen:]) // leave no copy of the secret behind

	c := Credentials{DeviceID: dk, Port: p.int("port", port), TLS: tls}
	if check {
		end := time.Unix(ts, 0).Add(baiduSkew).UTC()
		c.ExpiresAt = &end
		c.ExpiryEnforced = true
	}
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
		if check {
			t.add("timestamp", "issue time in Unix seconds: %d; Baidu accepts it within 10 minutes of its clock", ts)
		} else {
			t.add("timestamp", "0, the documented placeholder Baidu never checks (checkTimestamp=false)")
		}
		t.add("username", "thingidp@iotCoreId|deviceKey|timestamp|signMethod: %s", c.Username)
		t.add("content", "string hashed: deviceKey + \"&\" + timestamp + \"&\" + signMethod + deviceSecret = %q + the secret %s", string(arr[:signedLen]), redacted(in.secret))
		t.add("key", "none: a plain %s hash with the secret appended, not an HMAC", method)
		t.add("algorithm", "%s", method)
		t.add("password", "lowercase hex of the hash: %s", c.Password)
		t.add("clientId", "clientId param, else the deviceKey: %s", c.ClientID)
		if check {
			t.add("expiry", "Baidu refuses a CONNECT whose timestamp is more than 10 minutes from its clock: %s; a live session is not cut", c.ExpiresAt.Format(time.RFC3339))
		} else {
			t.add("expiry", "none: the timestamp 0 is never checked")
		}
		if tls {
			t.add("transport", "TLS on %d: Baidu's SDK uses port 1884 only with client certificates; a signature password there is unverified", c.Port)
		} else {
			t.add("transport", "plain MQTT on %d, as Baidu's SDK signs in with a signature password", c.Port)
		}
	}
	return c, nil
}
