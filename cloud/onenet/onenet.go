package signing

import (
	"encoding/base64"
	"strconv"
	"time"
)

// China Mobile OneNET Studio (docs/clouds.md, "onenet").
func init() {
	register(&Cloud{
		Name:         "onenet",
		Title:        "China Mobile OneNET Studio",
		SecretFormat: SecretBase64,
		Params: []ParamSpec{
			{Name: "productId", Type: TypeString, Required: true, Description: "Product ID (the MQTT username).", check: forbid("/", "it is a segment of res")},
			{Name: "deviceName", Type: TypeString, Required: true, Description: "Device name (the MQTT ClientId).", check: forbid("/", "it is a segment of res")},
			{Name: "signMethod", Type: TypeString, Default: "sha256", Allowed: []any{"sha256", "sha1", "md5"}, Description: "HMAC hash of the token's sign (method in the token)."},
			{Name: "keyScope", Type: TypeString, Default: "device", Allowed: []any{"device", "product"}, Description: "device: the secret is the device key (res products/{productId}/devices/{deviceName}); product: the product access key (res products/{productId})."},
			hostParam("Broker host (default mqtts.heclouds.com, or mqttstls.heclouds.com with TLS)."),
			portParam("Broker port (default 1883, or 8883 with TLS)."),
			{Name: "tls", Type: TypeBoolean, Default: false, Description: "TLS (port 8883) or plain MQTT (port 1883)."},
		},
		recipe: onenet,
	})
}

// onenetVersion is the only token version OneNET accepts.
const onenetVersion = "2018-10-31"

func onenet(in input) (Credentials, error) {
	p := in.params
	pid := p.str("productId", "")
	dn := p.str("deviceName", "")
	method := p.str("signMethod", "sha256")
	device := p.str("keyScope", "device") == "device"
	tls := p.bool("tls", false)
	host, port := "mqtts.heclouds.com", 1883
	if tls {
		host, port = "mqttstls.heclouds.com", 8883
	}
	alg := macSHA256
	switch method {
	case "sha1":
		alg = macSHA1
	case "md5":
		alg = macMD5
	}
	et := in.expiry()

	// One buffer holds the HMAC's pad, the string signed
	// (et \n method \n res \n version), the MAC and the output strings.
	var arr [1024]byte
	buf := strconv.AppendInt(arr[:macBlock], et, 10)
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
	digest := hmacPadded(alg, in.key, buf, buf[len(buf):])
	var sig [44]byte
	n := base64.StdEncoding.EncodedLen(len(digest))
	base64.StdEncoding.Encode(sig[:n], digest)

	exp := time.Unix(et, 0).UTC()
	c := Credentials{DeviceID: dn, Port: p.int("port", port), TLS: tls, ExpiresAt: &exp, ExpiryEnforced: true}
	o := outBuf{b: digest[len(digest):]}
	o.b = append(o.b, dn...)
	o.mark()
	o.b = append(o.b, pid...)
	o.mark()
	o.b = append(o.b, "version="+onenetVersion+"&res="...)
	o.b = appendQueryEscape(o.b, arr[resStart:resEnd])
	o.b = append(o.b, "&et="...)
	o.b = append(o.b, arr[macBlock:etEnd]...)
	o.b = append(o.b, "&method="...)
	o.b = append(o.b, method...)
	o.b = append(o.b, "&sign="...)
	o.b = appendQueryEscape(o.b, sig[:n])
	o.mark()
	o.b = append(o.b, p.str("host", host)...)
	o.mark()
	// Topics: OneJSON thing-model property topics.
	o = o.add("$sys/", pid, "/", dn, "/thing/property/post")
	o = o.add("$sys/", pid, "/", dn, "/thing/property/set")
	o = o.add("$sys/", pid, "/", dn, "/thing/property/post/reply")
	o.fillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands, &c.Topics.PropertyReply)
	c.Topics.PropertyReport, c.Topics.PropertySet = c.Topics.Telemetry, c.Topics.Commands

	if in.trace.on() {
		t := in.trace
		t.add("expiry", "et: expiry in Unix seconds (issue time + ttl %s): %d; the platform refuses the token at CONNECT after it", in.ttl, et)
		t.add("res", "%s", string(arr[resStart:resEnd]))
		t.add("content", "string signed: et + \"\\n\" + method + \"\\n\" + res + \"\\n\" + version = %q", string(arr[macBlock:resEnd])+"\n"+onenetVersion)
		t.add("key", "%s", base64KeyNote(in.secret))
		t.add("algorithm", "HMAC-%s", map[string]string{"sha256": "SHA256", "sha1": "SHA1", "md5": "MD5"}[method])
		t.add("sign", "standard base64 of the HMAC: %s, URL-encoded in the token", string(sig[:n]))
		t.add("password", "version=2018-10-31&res=urlenc(res)&et=ET&method=M&sign=urlenc(sign): %s", c.Password)
		t.add("clientId", "deviceName: %s", c.ClientID)
		t.add("username", "productId: %s", c.Username)
	}
	return c, nil
}
