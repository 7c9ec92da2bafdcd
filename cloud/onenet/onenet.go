package onenet

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/credsign/credsign/cloud"
)

// Backend is China Mobile OneNET Studio (docs/clouds.md, "onenet").
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "onenet",
		Title:        "China Mobile OneNET Studio",
		SecretFormat: cloud.SecretBase64,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("productId", "Product ID (the MQTT username).", inRes),
			cloud.RequiredParam("deviceName", "Device name (the MQTT ClientId).", inRes),
			cloud.EnumParam("signMethod", "HMAC hash of the token's sign (method in the token).", "sha256", "sha1", "md5"),
			cloud.EnumParam("keyScope", "device: the secret is the device key (res products/{productId}/devices/{deviceName}); product: the product access key (res products/{productId}).", "device", "product"),
			cloud.HostParam("Broker host (default mqtts.heclouds.com, or mqttstls.heclouds.com with TLS)."),
			cloud.PortParam("Broker port (default 1883, or 8883 with TLS)."),
			cloud.BoolParam("tls", false, "TLS (port 8883) or plain MQTT (port 1883)."),
		},
		Recipe: onenet,
	}
}

// inRes refuses what would break the segments of the token's res.
var inRes = cloud.Forbid("/", "it is a segment of res")

// onenetVersion is the only token version OneNET accepts.
const onenetVersion = "2018-10-31"

func onenet(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	pid := p.Str("productId", "")
	dn := p.Str("deviceName", "")
	method := p.Str("signMethod", "sha256")
	device := p.Str("keyScope", "device") == "device"
	tls := p.Bool("tls", false)
	host, port := "mqtts.heclouds.com", 1883
	if tls {
		host, port = "mqttstls.heclouds.com", 8883
	}
	alg := cloud.MACSHA256
	switch method {
	case "sha1":
		alg = cloud.MACSHA1
	case "md5":
		alg = cloud.MACMD5
	}
	et := in.Expiry()

	// One buffer holds the HMAC's pad, the string signed
	// (et \n method \n res \n version), the MAC and the output strings.
	var arr [1024]byte
	buf := strconv.AppendInt(arr[:cloud.MACBlock], et, 10)
	etEnd := len(buf)
	buf = append(buf, '\n')
	buf = append(buf, method...)
	buf = append(buf, '\n')
	resStart := len(buf)
	buf = append(buf, "products/"...)
	buf = append(buf, pid...)
	if device {
		buf = append(buf, "/devices/"...)
		buf = append(buf, dn...)
	}
	resEnd := len(buf)
	buf = append(buf, '\n')
	buf = append(buf, onenetVersion...)
	digest := cloud.HMACPadded(alg, in.Key, buf, buf[len(buf):])
	var sig [44]byte
	n := base64.StdEncoding.EncodedLen(len(digest))
	base64.StdEncoding.Encode(sig[:n], digest)

	exp := time.Unix(et, 0).UTC()
	c := cloud.Credentials{DeviceID: dn, Port: p.Int("port", port), TLS: tls, ExpiresAt: &exp, ExpiryEnforced: true}
	o := cloud.OutBuf{B: digest[len(digest):]}
	o.B = append(o.B, dn...)
	o.Mark()
	o.B = append(o.B, pid...)
	o.Mark()
	o.B = append(o.B, "version="+onenetVersion+"&res="...)
	o.B = cloud.AppendQueryEscape(o.B, arr[resStart:resEnd])
	o.B = append(o.B, "&et="...)
	o.B = append(o.B, arr[cloud.MACBlock:etEnd]...)
	o.B = append(o.B, "&method="...)
	o.B = append(o.B, method...)
	o.B = append(o.B, "&sign="...)
	o.B = cloud.AppendQueryEscape(o.B, sig[:n])
	o.Mark()
	o.B = append(o.B, p.Str("host", host)...)
	o.Mark()
	// Topics: OneJSON thing-model property topics.
	o = o.Add("$sys/", pid, "/", dn, "/thing/property/post")
	o = o.Add("$sys/", pid, "/", dn, "/thing/property/set")
	o = o.Add("$sys/", pid, "/", dn, "/thing/property/post/reply")
	o.FillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.PropertyReply)
	c.Topics.PropertyReport, c.Topics.PropertySet = c.Topics.Telemetry, c.Topics.Commands

	if in.Trace.On() {
		t := in.Trace
		t.Add("expiry", "et: expiry in Unix seconds (issue time + ttl %s): %d; the platform refuses the token at CONNECT after it", in.TTL, et)
		t.Add("res", "%s", string(arr[resStart:resEnd]))
		t.Add("content", "string signed: et + \"\\n\" + method + \"\\n\" + res + \"\\n\" + version = %q", string(arr[cloud.MACBlock:resEnd])+"\n"+onenetVersion)
		t.Add("key", "%s", cloud.Base64KeyNote(in.Secret))
		t.Add("algorithm", "HMAC-%s", map[string]string{"sha256": "SHA256", "sha1": "SHA1", "md5": "MD5"}[method])
		t.Add("sign", "standard base64 of the HMAC: %s, URL-encoded in the token", string(sig[:n]))
		t.Add("password", "version=2018-10-31&res=urlenc(res)&et=ET&method=M&sign=urlenc(sign): %s", c.Password)
		t.Add("clientId", "deviceName: %s", c.ClientID)
		t.Add("username", "productId: %s", c.Username)
	}
	return c, nil
}
