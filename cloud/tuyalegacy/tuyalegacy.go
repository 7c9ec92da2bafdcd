package tuyalegacy

import (
	"crypto/md5"
	"encoding/hex"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/tuya"
)

// Backend is Tuya's older device protocol, the one
// tuya/tuya-connect-kit-for-mqtt-embedded-c (src/mqtt_service.c,
// tuya_mqtt_signature_tool, activated branch) and
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
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "tuyalegacy",
		Title:        "Tuya device protocol (tuya-connect-kit, MQTT PV2.2)",
		SecretFormat: cloud.SecretText,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("deviceId", "devId from the device's activation.", cloud.Forbid("/+#", "it is a level of the device's topics")),
			tuya.RegionParam("Data centre; the host is m2.tuya{region}.com (tuya_endpoint.c), unless activation named another."),
			cloud.HostParam("Broker host (default m2.tuya{region}.com; use the mqttsUrl host the activation answered)."),
			cloud.PortParam("Broker port (default 8883, TLS)."),
		},
		Recipe: tuyaLegacy,
	}
}

func tuyaLegacy(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	id := p.Str("deviceId", "")
	sum := md5.Sum(in.Key)

	c := cloud.Credentials{DeviceID: id, Port: p.Int("port", 8883), TLS: true}
	var arr [256]byte
	o := cloud.OutBuf{B: arr[:0]}
	o = o.Add(id)
	o = o.Add(id)
	// tuya_mqtt_signature_tool: for i in 0..7, "%02x" of digest[i+4].
	o.B = hex.AppendEncode(o.B, sum[4:12])
	o.Mark()
	clear(sum[:])
	o.B = cloud.AppendHost(o.B, p.Str("host", ""), "m2.tuya", p.Str("region", "cn"), ".com")
	o.Mark()
	o = o.Add("smart/device/out/", id)
	o = o.Add("smart/device/in/", id)
	o.FillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands)

	if in.Trace.On() {
		t := in.Trace
		t.Add("clientId", "the devId: %s", c.ClientID)
		t.Add("username", "the devId: %s", c.Username)
		t.Add("content", "string hashed: the activation's secKey %s", cloud.Redacted(in.Secret))
		t.Add("key", "none: a plain MD5, not an HMAC")
		t.Add("algorithm", "MD5")
		t.Add("password", "hex of bytes 4 to 11 of MD5(secKey), 16 lowercase hex digits: %s", c.Password)
		t.Add("topics", "publish %s, subscribe %s; payloads are PV2.2 frames, AES-128-ECB under the activation's localKey, which the firmware encrypts", c.Topics.Telemetry, c.Topics.Commands)
		t.Add("expiry", "none: the password is fixed until the device is activated again")
	}
	return c, nil
}
