package signing

import (
	"crypto/md5"
	"encoding/hex"
)

// Tuya's older device protocol, the one tuya/tuya-connect-kit-for-mqtt-embedded-c
// (src/mqtt_service.c, tuya_mqtt_signature_tool, activated branch) and
// tuya/tuyaos-link-sdk-python (tuyalinksdk/mqtt_builder.py, login_sign)
// speak once a device is activated (docs/clouds.md, "tuyalegacy"):
//
//	ClientId = Username = devId
//	Password = hex(MD5(secKey))[8:24]   (the C SDK prints digest[4..11] with "%02x")
//	topics smart/device/in/{devId} (subscribe), smart/device/out/{devId} (publish)
//
// secKey is the activation answer's secKey (tuya_iot.c
// activate_json_string_parse; tuyalinksdk/client.py passes
// self._activated['secKey'] as signkey). The activation's localKey is not
// part of the login: it is the AES-128-ECB key of the PV2.2 payloads,
// which the firmware encrypts itself.
func init() {
	register(&Cloud{
		Name:         "tuyalegacy",
		Title:        "Tuya device protocol (tuya-connect-kit, MQTT PV2.2)",
		SecretFormat: SecretText,
		Params: []ParamSpec{
			{Name: "deviceId", Type: TypeString, Required: true, Description: "devId from the device's activation.", check: forbid("/+#", "it is a level of the device's topics")},
			{Name: "region", Type: TypeString, Default: "cn", Allowed: []any{"cn", "us", "eu", "in"}, Description: "Data centre; the host is m2.tuya{region}.com (tuya_endpoint.c), unless activation named another."},
			hostParam("Broker host (default m2.tuya{region}.com; use the mqttsUrl host the activation answered)."),
			portParam("Broker port (default 8883, TLS)."),
		},
		recipe: tuyaLegacy,
	})
}

func tuyaLegacy(in input) (Credentials, error) {
	p := in.params
	id := p.str("deviceId", "")
	sum := md5.Sum(in.key)

	c := Credentials{DeviceID: id, Port: p.int("port", 8883), TLS: true}
	var arr [256]byte
	o := outBuf{b: arr[:0]}
	o = o.add(id)
	o = o.add(id)
	// tuya_mqtt_signature_tool: for i in 0..7, "%02x" of digest[i+4].
	o.b = hex.AppendEncode(o.b, sum[4:12])
	o.mark()
	clear(sum[:])
	o.b = appendHost(o.b, p.str("host", ""), "m2.tuya", p.str("region", "cn"), ".com")
	o.mark()
	o = o.add("smart/device/out/", id)
	o = o.add("smart/device/in/", id)
	o.fillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands)

	if in.trace.on() {
		t := in.trace
		t.add("clientId", "the devId: %s", c.ClientID)
		t.add("username", "the devId: %s", c.Username)
		t.add("content", "string hashed: the activation's secKey %s", redacted(in.secret))
		t.add("key", "none: a plain MD5, not an HMAC")
		t.add("algorithm", "MD5")
		t.add("password", "hex of bytes 4 to 11 of MD5(secKey), 16 lowercase hex digits: %s", c.Password)
		t.add("topics", "publish %s, subscribe %s; payloads are PV2.2 frames, AES-128-ECB under the activation's localKey, which the firmware encrypts", c.Topics.Telemetry, c.Topics.Commands)
		t.add("expiry", "none: the password is fixed until the device is activated again")
	}
	return c, nil
}
