package signing

import (
	"encoding/base64"
	"strconv"
	"time"
)

// Azure IoT Hub (docs/clouds.md, "azure").
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

	// One buffer holds the HMAC's pad, the string signed (sr + "\n" + se,
	// sr the URL-encoded resource), the MAC and the output strings; for
	// usual lengths it stays on the stack.
	var arr [1024]byte
	buf := appendQueryEscape(arr[:macBlock], hub)
	buf = append(buf, "%2Fdevices%2F"...)
	buf = appendQueryEscape(buf, deviceID)
	if moduleID != "" {
		buf = append(buf, "%2Fmodules%2F"...)
		buf = appendQueryEscape(buf, moduleID)
	}
	sr := buf[macBlock:]
	buf = append(buf, '\n')
	buf = strconv.AppendInt(buf, se, 10)
	signed := buf[macBlock:]
	digest := hmacPadded(macSHA256, in.key, buf, buf[len(buf):])
	var sig [44]byte
	base64.StdEncoding.Encode(sig[:], digest)

	exp := time.Unix(se, 0).UTC()
	c := Credentials{DeviceID: deviceID, Port: p.int("port", 8883), TLS: true, ExpiresAt: &exp, ExpiryEnforced: true}
	o := outBuf{b: digest[len(digest):]}
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
	o.b = appendQueryEscape(o.b, sig[:])
	o.b = append(o.b, "&se="...)
	o.b = strconv.AppendInt(o.b, se, 10)
	if policy != "" {
		o.b = append(o.b, "&skn="...)
		o.b = appendQueryEscape(o.b, policy)
	}
	o.mark()
	o.b = append(o.b, p.str("host", hub)...)
	o.mark()
	// Topics: device-to-cloud and cloud-to-device messages (a module's
	// inputs), direct methods and the device twin.
	if moduleID != "" {
		o = o.add("devices/", deviceID, "/modules/", moduleID, "/messages/events/")
		o = o.add("devices/", deviceID, "/modules/", moduleID, "/inputs/#")
	} else {
		o = o.add("devices/", deviceID, "/messages/events/")
		o = o.add("devices/", deviceID, "/messages/devicebound/#")
	}
	o.fillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands)
	c.Topics.Methods = "$iothub/methods/POST/#"
	c.Topics.MethodResponse = "$iothub/methods/res/{status}/?$rid={rid}"
	c.Topics.TwinResponse = "$iothub/twin/res/#"
	c.Topics.TwinGet = "$iothub/twin/GET/?$rid={rid}"
	c.Topics.TwinReported = "$iothub/twin/PATCH/properties/reported/?$rid={rid}"
	c.Topics.TwinDesired = "$iothub/twin/PATCH/properties/desired/#"

	if in.trace.on() {
		t := in.trace
		resource := hub + "/devices/" + deviceID
		if moduleID != "" {
			resource += "/modules/" + moduleID
		}
		t.add("resource", "hubHost/devices/deviceId[/modules/moduleId]: %s", resource)
		t.add("sr", "URL-encoded resource: %s", string(sr))
		t.add("se", "expiry in Unix seconds (issue time + ttl %s): %d; the hub disconnects the client then", in.ttl, se)
		t.add("content", "string signed: sr + \"\\n\" + se = %q", string(signed))
		t.add("key", "%s", base64KeyNote(in.secret))
		t.add("algorithm", "HMAC-SHA256")
		t.add("sig", "standard base64 of the HMAC: %s, URL-encoded in the password", string(sig[:]))
		if policy != "" {
			t.add("skn", "shared access policy name (the key is a policy key): %s", policy)
		}
		t.add("password", "%s", c.Password)
		t.add("clientId", "deviceId[/moduleId]: %s", c.ClientID)
		t.add("username", "hubHost/deviceId[/moduleId]/?api-version=%s: %s", apiVersion, c.Username)
	}
	return c, nil
}
