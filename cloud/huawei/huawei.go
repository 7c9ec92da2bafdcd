package signing

import (
	"encoding/hex"
	"time"
)

// Huawei Cloud IoTDA (docs/clouds.md, "huawei").
func init() {
	register(&Cloud{
		Name:         "huawei",
		Title:        "Huawei Cloud IoTDA",
		SecretFormat: SecretText,
		Params: []ParamSpec{
			{Name: "deviceId", Type: TypeString, Required: true, Description: "Device id, usually ${productId}_${nodeId}."},
			{Name: "checkTimestamp", Type: TypeBoolean, Default: true, Description: "Whether the platform checks the timestamp (ClientId flag 1); with false nothing expires."},
			hostParam("Broker host (default the legacy shared endpoint iot-mqtts.cn-north-4.myhuaweicloud.com; use your instance's from the console)."),
			{Name: "tls", Type: TypeBoolean, Default: true, Description: "TLS (port 8883) or, with false, plain MQTT (port 1883)."},
			portParam("Broker port (default 8883 with TLS, 1883 without)."),
		},
		// The timestamp names an hour; with checkTimestamp the triple is good
		// until that hour ends, so no longer lifetime can be honoured.
		maxTTL: func(p params) (time.Duration, string) {
			if p.bool("checkTimestamp", true) {
				return time.Hour, ": with checkTimestamp the timestamp names one hour; checkTimestamp=false makes a triple that does not expire"
			}
			return maxTTL, ""
		},
		recipe: huawei,
	})
}

// huaweiLegacyHost is the legacy shared endpoint of docs/clouds.md.
const huaweiLegacyHost = "iot-mqtts.cn-north-4.myhuaweicloud.com"

func huawei(in input) (Credentials, error) {
	p := in.params
	deviceID := p.str("deviceId", "")
	check := p.bool("checkTimestamp", true)
	stamp := hourStamp(in.now) // in.now is UTC
	ts := stamp[:]
	flag := byte('0')
	if check {
		flag = '1'
	}
	// The timestamp is the key and the secret is the message.
	tls := p.bool("tls", true)
	port := 1883
	if tls {
		port = 8883
	}
	// One buffer holds the HMAC's pad, the message (the secret), the MAC and
	// the output strings; for usual lengths it stays on the stack. The
	// timestamp is the key and the secret is the message.
	var arr [1024]byte
	buf := append(arr[:macBlock], in.key...)
	digest := hmacPadded(macSHA256, ts, buf, buf[len(buf):])
	clear(buf[macBlock:]) // the output is cut from what follows; leave no copy of the secret behind

	c := Credentials{DeviceID: deviceID, Port: p.int("port", port), TLS: tls}
	o := outBuf{b: digest[len(digest):]}
	o.b = appendJoin(o.b, deviceID, "_0_")
	o.b = append(o.b, flag, '_')
	o.b = append(o.b, ts...)
	o.mark()
	o.b = append(o.b, deviceID...)
	o.mark()
	o.b = hex.AppendEncode(o.b, digest)
	o.mark()
	o.b = append(o.b, p.str("host", huaweiLegacyHost)...)
	o.mark()
	// Topics: IoTDA's system topics.
	o = o.add("$oc/devices/", deviceID, "/sys/messages/up")
	o = o.add("$oc/devices/", deviceID, "/sys/commands/#")
	o = o.add("$oc/devices/", deviceID, "/sys/commands/response/request_id={request_id}")
	o = o.add("$oc/devices/", deviceID, "/sys/properties/report")
	o = o.add("$oc/devices/", deviceID, "/sys/properties/set/#")
	o.fillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.CommandResponse, &c.Topics.PropertyReport, &c.Topics.PropertySet)
	if check {
		end := in.now.Truncate(time.Hour).Add(time.Hour)
		c.ExpiresAt = &end
		c.ExpiryEnforced = true
	}
	if in.trace.on() {
		t := in.trace
		t.add("timestamp", "issue time in UTC as YYYYMMDDHH: %s", string(ts))
		t.add("clientId", "deviceId + \"_0_\" + F + \"_\" + timestamp, F = %c (1: the platform checks the timestamp, 0: it does not): %s", flag, c.ClientID)
		t.add("username", "deviceId: %s", c.Username)
		t.add("key", "the timestamp %q as UTF-8 bytes (the timestamp is the key)", string(ts))
		t.add("content", "message signed: the device secret as raw UTF-8 bytes, %s", redacted(in.secret))
		t.add("algorithm", "HMAC-SHA256")
		t.add("password", "lowercase hex of the HMAC: %s", c.Password)
		if check {
			t.add("expiry", "the platform rejects the timestamp once its hour has passed: %s", c.ExpiresAt.Format(time.RFC3339))
		} else {
			t.add("expiry", "none: with F = 0 the platform does not check the timestamp")
		}
	}
	return c, nil
}

// hourStamp formats t as YYYYMMDDHH, as t.Format("2006010215") would for
// the years 1970-9999 that Sign accepts, without allocating.
func hourStamp(t time.Time) (b [10]byte) {
	y, m, d := t.Date()
	h := t.Hour()
	return [10]byte{
		byte('0' + y/1000), byte('0' + y/100%10), byte('0' + y/10%10), byte('0' + y%10),
		byte('0' + m/10), byte('0' + m%10), byte('0' + d/10), byte('0' + d%10),
		byte('0' + h/10), byte('0' + h%10),
	}
}
