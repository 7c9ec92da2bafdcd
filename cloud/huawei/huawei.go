package huawei

import (
	"encoding/hex"
	"time"

	"github.com/credsign/credsign/cloud"
)

// Backend is Huawei Cloud IoTDA (docs/clouds.md, "huawei").
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "huawei",
		Title:        "Huawei Cloud IoTDA",
		SecretFormat: cloud.SecretText,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("deviceId", "Device id, usually ${productId}_${nodeId}.", nil),
			cloud.BoolParam("checkTimestamp", true, "Whether the platform checks the timestamp (ClientId flag 1); with false nothing expires."),
			cloud.HostParam("Broker host (default the legacy shared endpoint iot-mqtts.cn-north-4.myhuaweicloud.com; use your instance's from the console)."),
			cloud.BoolParam("tls", true, "TLS (port 8883) or, with false, plain MQTT (port 1883)."),
			cloud.PortParam("Broker port (default 8883 with TLS, 1883 without)."),
		},
		// The timestamp names an hour; with checkTimestamp the triple is good
		// until that hour ends, so no longer lifetime can be honoured.
		MaxTTLFor: func(p cloud.Params) (time.Duration, string) {
			if p.Bool("checkTimestamp", true) {
				return time.Hour, ": with checkTimestamp the timestamp names one hour; checkTimestamp=false makes a triple that does not expire"
			}
			return cloud.LongestTTL, ""
		},
		Recipe: huawei,
	}
}

// huaweiLegacyHost is the legacy shared endpoint of docs/clouds.md.
const huaweiLegacyHost = "iot-mqtts.cn-north-4.myhuaweicloud.com"

func huawei(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	deviceID := p.Str("deviceId", "")
	check := p.Bool("checkTimestamp", true)
	stamp := HourStamp(in.Now) // in.Now is UTC
	ts := stamp[:]
	flag := byte('0')
	if check {
		flag = '1'
	}
	// The timestamp is the key and the secret is the message.
	tls := p.Bool("tls", true)
	port := 1883
	if tls {
		port = 8883
	}
	// One buffer holds the HMAC's pad, the message (the secret), the MAC and
	// the output strings; for usual lengths it stays on the stack. The
	// timestamp is the key and the secret is the message.
	var arr [1024]byte
	buf := append(arr[:cloud.MACBlock], in.Key...)
	digest := cloud.HMACPadded(cloud.MACSHA256, ts, buf, buf[len(buf):])
	clear(buf[cloud.MACBlock:]) // the output is cut from what follows; leave no copy of the secret behind

	c := cloud.Credentials{DeviceID: deviceID, Port: p.Int("port", port), TLS: tls}
	o := cloud.OutBuf{B: digest[len(digest):]}
	o.B = cloud.AppendJoin(o.B, deviceID, "_0_")
	o.B = append(o.B, flag, '_')
	o.B = append(o.B, ts...)
	o.Mark()
	o.B = append(o.B, deviceID...)
	o.Mark()
	o.B = hex.AppendEncode(o.B, digest)
	o.Mark()
	o.B = append(o.B, p.Str("host", huaweiLegacyHost)...)
	o.Mark()
	// Topics: IoTDA's system topics.
	o = o.Add("$oc/devices/", deviceID, "/sys/messages/up")
	o = o.Add("$oc/devices/", deviceID, "/sys/commands/#")
	o = o.Add("$oc/devices/", deviceID, "/sys/commands/response/request_id={request_id}")
	o = o.Add("$oc/devices/", deviceID, "/sys/properties/report")
	o = o.Add("$oc/devices/", deviceID, "/sys/properties/set/#")
	o.FillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.CommandResponse, &c.Topics.PropertyReport, &c.Topics.PropertySet)
	if check {
		end := in.Now.Truncate(time.Hour).Add(time.Hour)
		c.ExpiresAt = &end
		c.ExpiryEnforced = true
	}
	if in.Trace.On() {
		t := in.Trace
		t.Add("timestamp", "issue time in UTC as YYYYMMDDHH: %s", string(ts))
		t.Add("clientId", "deviceId + \"_0_\" + F + \"_\" + timestamp, F = %c (1: the platform checks the timestamp, 0: it does not): %s", flag, c.ClientID)
		t.Add("username", "deviceId: %s", c.Username)
		t.Add("key", "the timestamp %q as UTF-8 bytes (the timestamp is the key)", string(ts))
		t.Add("content", "message signed: the device secret as raw UTF-8 bytes, %s", cloud.Redacted(in.Secret))
		t.Add("algorithm", "HMAC-SHA256")
		t.Add("password", "lowercase hex of the HMAC: %s", c.Password)
		if check {
			t.Add("expiry", "the platform rejects the timestamp once its hour has passed: %s", c.ExpiresAt.Format(time.RFC3339))
		} else {
			t.Add("expiry", "none: with F = 0 the platform does not check the timestamp")
		}
	}
	return c, nil
}

// HourStamp formats t as YYYYMMDDHH, as t.Format("2006010215") would for
// the years 1970-9999 that Sign accepts, without allocating.
func HourStamp(t time.Time) (b [10]byte) {
	y, m, d := t.Date()
	h := t.Hour()
	return [10]byte{
		byte('0' + y/1000), byte('0' + y/100%10), byte('0' + y/10%10), byte('0' + y%10),
		byte('0' + m/10), byte('0' + m%10), byte('0' + d/10), byte('0' + d%10),
		byte('0' + h/10), byte('0' + h%10),
	}
}
