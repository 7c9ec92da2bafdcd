package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Huawei Cloud IoTDA (clouds.md, "huawei").
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

// huaweiLegacyHost is the legacy shared endpoint of clouds.md.
const huaweiLegacyHost = "iot-mqtts.cn-north-4.myhuaweicloud.com"

func huawei(in input) (Credentials, error) {
	p := in.params
	deviceID := p.str("deviceId", "")
	check := p.bool("checkTimestamp", true)
	var tsBuf [10]byte
	ts := in.now.AppendFormat(tsBuf[:0], "2006010215") // in.now is UTC
	flag := byte('0')
	if check {
		flag = '1'
	}
	// The timestamp is the key and the secret is the message.
	scratch := make([]byte, 0, len(in.secret)+3*len(deviceID)+len(p.str("host", huaweiLegacyHost))+128)
	scratch = append(scratch, in.secret...)
	mac := hmac.New(sha256.New, ts)
	mac.Write(scratch)
	digest := mac.Sum(scratch[len(scratch):])

	tls := p.bool("tls", true)
	port := 1883
	if tls {
		port = 8883
	}
	// The output strings follow the digest in the same buffer.
	o := outBuf{b: digest[len(digest):]}
	o.b = append(o.b, deviceID...)
	o.b = append(o.b, "_0_"...)
	o.b = append(o.b, flag, '_')
	o.b = append(o.b, ts...)
	o.mark()
	o.b = append(o.b, deviceID...)
	o.mark()
	o.b = hex.AppendEncode(o.b, digest)
	o.mark()
	o.b = append(o.b, p.str("host", huaweiLegacyHost)...)
	o.mark()
	c := Credentials{DeviceID: deviceID, Port: p.int("port", port), TLS: tls}
	o.fill(&c)
	if check {
		end := in.now.Truncate(time.Hour).Add(time.Hour)
		c.ExpiresAt = &end
		c.ExpiryEnforced = true
	}
	if in.trace.on() {
		t := in.trace
		t.add("timestamp", "issue time in UTC as YYYYMMDDHH: %s", ts)
		t.add("clientId", "deviceId + \"_0_\" + F + \"_\" + timestamp, F = %c (1: the platform checks the timestamp, 0: it does not): %s", flag, c.ClientID)
		t.add("username", "deviceId: %s", c.Username)
		t.add("key", "the timestamp %q as UTF-8 bytes (the timestamp is the key)", ts)
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
