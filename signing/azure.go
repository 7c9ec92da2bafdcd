package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// Azure IoT Hub (clouds.md, "azure").
func init() {
	register(&Cloud{
		Name:         "azure",
		Title:        "Azure IoT Hub",
		SecretFormat: SecretBase64,
		Params: []ParamSpec{
			{Name: "hubHost", Type: TypeString, Required: true, Description: "IoT hub host name, {hub}.azure-devices.net.", check: checkHost},
			{Name: "deviceId", Type: TypeString, Required: true, Description: "Device id.", check: forbid("/", "it is a segment of the resource URI")},
			{Name: "moduleId", Type: TypeString, Description: "Module id, for a module identity.", check: forbid("/", "it is a segment of the resource URI")},
			{Name: "policyName", Type: TypeString, Description: "Shared access policy name, when the secret is a policy key rather than a device key (adds skn)."},
			{Name: "apiVersion", Type: TypeString, Default: "2021-04-12", Description: "api-version in the username."},
			hostParam("Broker host (default hubHost)."),
			portParam("Broker port (default 8883; TLS is mandatory)."),
		},
		recipe: azure,
	})
}

func azure(in input) (Credentials, error) {
	p := in.params
	hub := p.str("hubHost", "")
	deviceID := p.str("deviceId", "")
	moduleID := p.str("moduleId", "")
	policy := p.str("policyName", "")
	apiVersion := p.str("apiVersion", "2021-04-12")

	se := in.expiry()

	// The string signed: sr + "\n" + se, with sr the URL-encoded resource.
	// Room for the signed string, the digest and the four output strings.
	buf := make([]byte, 0, 4*(len(hub)+len(deviceID)+len(moduleID))+len(policy)*3+len(apiVersion)+192)
	buf = appendQueryEscape(buf, hub)
	buf = append(buf, "%2Fdevices%2F"...)
	buf = appendQueryEscape(buf, deviceID)
	if moduleID != "" {
		buf = append(buf, "%2Fmodules%2F"...)
		buf = appendQueryEscape(buf, moduleID)
	}
	srLen := len(buf)
	buf = append(buf, '\n')
	buf = strconv.AppendInt(buf, se, 10)
	sr, signed := buf[:srLen], buf

	key, _ := base64.StdEncoding.DecodeString(in.secret) // checked by checkSecret
	mac := hmac.New(sha256.New, key)
	mac.Write(signed)
	var sig [44]byte
	base64.StdEncoding.Encode(sig[:], mac.Sum(buf[len(buf):]))

	// The output strings follow the signed string in the same buffer.
	o := outBuf{b: buf[len(buf):]}
	o.b = append(o.b, deviceID...)
	if moduleID != "" {
		o.b = append(o.b, '/')
		o.b = append(o.b, moduleID...)
	}
	o.mark()
	o.b = append(o.b, hub...)
	o.b = append(o.b, '/')
	o.b = append(o.b, deviceID...)
	if moduleID != "" {
		o.b = append(o.b, '/')
		o.b = append(o.b, moduleID...)
	}
	o.b = append(o.b, "/?api-version="...)
	o.b = append(o.b, apiVersion...)
	o.mark()
	o.b = append(o.b, "SharedAccessSignature sr="...)
	o.b = append(o.b, sr...)
	o.b = append(o.b, "&sig="...)
	o.b = appendQueryEscape(o.b, string(sig[:]))
	o.b = append(o.b, "&se="...)
	o.b = strconv.AppendInt(o.b, se, 10)
	if policy != "" {
		o.b = append(o.b, "&skn="...)
		o.b = appendQueryEscape(o.b, policy)
	}
	o.mark()
	o.b = append(o.b, p.str("host", hub)...)
	o.mark()
	exp := time.Unix(se, 0).UTC()
	c := Credentials{DeviceID: deviceID, Port: p.int("port", 8883), TLS: true, ExpiresAt: &exp, ExpiryEnforced: true}
	o.fill(&c)

	if in.trace.on() {
		t := in.trace
		resource := hub + "/devices/" + deviceID
		if moduleID != "" {
			resource += "/modules/" + moduleID
		}
		t.add("resource", "hubHost/devices/deviceId[/modules/moduleId]: %s", resource)
		t.add("sr", "URL-encoded resource: %s", sr)
		t.add("se", "expiry in Unix seconds (issue time + ttl %s): %d; the hub disconnects the client then", in.ttl, se)
		t.add("content", "string signed: sr + \"\\n\" + se = %q", signed)
		t.add("key", "%s", base64KeyNote(in.secret))
		t.add("algorithm", "HMAC-SHA256")
		t.add("sig", "standard base64 of the HMAC: %s, URL-encoded in the password", sig[:])
		if policy != "" {
			t.add("skn", "shared access policy name (the key is a policy key): %s", policy)
		}
		t.add("password", "%s", c.Password)
		t.add("clientId", "deviceId[/moduleId]: %s", c.ClientID)
		t.add("username", "hubHost/deviceId[/moduleId]/?api-version=%s: %s", apiVersion, c.Username)
	}
	return c, nil
}

// azureSig is b64(HMAC-SHA256(key, msg)), the signature of a SAS token.
func azureSig(key, msg []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(msg)
	var sum [sha256.Size]byte
	var out [44]byte
	base64.StdEncoding.Encode(out[:], mac.Sum(sum[:0]))
	return string(out[:])
}
