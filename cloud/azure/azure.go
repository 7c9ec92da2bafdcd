package azure

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/credsign/credsign/cloud"
)

// Backend is Azure IoT Hub (docs/clouds.md, "azure").
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "azure",
		Title:        "Azure IoT Hub",
		SecretFormat: cloud.SecretBase64,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("hubHost", "IoT hub host name, {hub}.azure-devices.net.", cloud.CheckHost),
			cloud.RequiredParam("deviceId", "Device id.", inResource),
			cloud.StringParam("moduleId", "", "Module id, for a module identity.", inResource),
			cloud.StringParam("policyName", "", "Shared access policy name, when the secret is a policy key rather than a device key (adds skn).", nil),
			cloud.StringParam("apiVersion", "2021-04-12", "api-version in the username.", nil),
			cloud.HostParam("Broker host (default hubHost)."),
			cloud.PortParam("Broker port (default 8883; TLS is mandatory)."),
		},
		Recipe: azure,
	}
}

// inResource refuses what would break the resource URI's segments.
var inResource = cloud.Forbid("/", "it is a segment of the resource URI")

func azure(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	hub := p.Str("hubHost", "")
	deviceID := p.Str("deviceId", "")
	moduleID := p.Str("moduleId", "")
	policy := p.Str("policyName", "")
	apiVersion := p.Str("apiVersion", "2021-04-12")

	se := in.Expiry()

	// One buffer holds the HMAC's pad, the string signed (sr + "\n" + se,
	// sr the URL-encoded resource), the MAC and the output strings; for
	// usual lengths it stays on the stack.
	var arr [1024]byte
	buf := cloud.AppendQueryEscape(arr[:cloud.MACBlock], hub)
	buf = append(buf, "%2Fdevices%2F"...)
	buf = cloud.AppendQueryEscape(buf, deviceID)
	if moduleID != "" {
		buf = append(buf, "%2Fmodules%2F"...)
		buf = cloud.AppendQueryEscape(buf, moduleID)
	}
	sr := buf[cloud.MACBlock:]
	buf = append(buf, '\n')
	buf = strconv.AppendInt(buf, se, 10)
	signed := buf[cloud.MACBlock:]
	digest := cloud.HMACPadded(cloud.MACSHA256, in.Key, buf, buf[len(buf):])
	var sig [44]byte
	base64.StdEncoding.Encode(sig[:], digest)

	exp := time.Unix(se, 0).UTC()
	c := cloud.Credentials{DeviceID: deviceID, Port: p.Int("port", 8883), TLS: true, ExpiresAt: &exp, ExpiryEnforced: true}
	o := cloud.OutBuf{B: digest[len(digest):]}
	o.B = append(o.B, deviceID...)
	if moduleID != "" {
		o.B = append(o.B, '/')
		o.B = append(o.B, moduleID...)
	}
	o.Mark()
	o.B = append(o.B, hub...)
	o.B = append(o.B, '/')
	o.B = append(o.B, deviceID...)
	if moduleID != "" {
		o.B = append(o.B, '/')
		o.B = append(o.B, moduleID...)
	}
	o.B = append(o.B, "/?api-version="...)
	o.B = append(o.B, apiVersion...)
	o.Mark()
	o.B = append(o.B, "SharedAccessSignature sr="...)
	o.B = append(o.B, sr...)
	o.B = append(o.B, "&sig="...)
	o.B = cloud.AppendQueryEscape(o.B, sig[:])
	o.B = append(o.B, "&se="...)
	o.B = strconv.AppendInt(o.B, se, 10)
	if policy != "" {
		o.B = append(o.B, "&skn="...)
		o.B = cloud.AppendQueryEscape(o.B, policy)
	}
	o.Mark()
	o.B = append(o.B, p.Str("host", hub)...)
	o.Mark()
	// Topics: device-to-cloud and cloud-to-device messages (a module's
	// inputs), direct methods and the device twin.
	if moduleID != "" {
		o = o.Add("devices/", deviceID, "/modules/", moduleID, "/messages/events/")
		o = o.Add("devices/", deviceID, "/modules/", moduleID, "/inputs/#")
	} else {
		o = o.Add("devices/", deviceID, "/messages/events/")
		o = o.Add("devices/", deviceID, "/messages/devicebound/#")
	}
	o.FillTopics(&c, &c.Topics.Telemetry, &c.Topics.Commands)
	c.Topics.Methods = "$iothub/methods/POST/#"
	c.Topics.MethodResponse = "$iothub/methods/res/{status}/?$rid={rid}"
	c.Topics.TwinResponse = "$iothub/twin/res/#"
	c.Topics.TwinGet = "$iothub/twin/GET/?$rid={rid}"
	c.Topics.TwinReported = "$iothub/twin/PATCH/properties/reported/?$rid={rid}"
	c.Topics.TwinDesired = "$iothub/twin/PATCH/properties/desired/#"

	if in.Trace.On() {
		t := in.Trace
		resource := hub + "/devices/" + deviceID
		if moduleID != "" {
			resource += "/modules/" + moduleID
		}
		t.Add("resource", "hubHost/devices/deviceId[/modules/moduleId]: %s", resource)
		t.Add("sr", "URL-encoded resource: %s", string(sr))
		t.Add("se", "expiry in Unix seconds (issue time + ttl %s): %d; the hub disconnects the client then", in.TTL, se)
		t.Add("content", "string signed: sr + \"\\n\" + se = %q", string(signed))
		t.Add("key", "%s", cloud.Base64KeyNote(in.Secret))
		t.Add("algorithm", "HMAC-SHA256")
		t.Add("sig", "standard base64 of the HMAC: %s, URL-encoded in the password", string(sig[:]))
		if policy != "" {
			t.Add("skn", "shared access policy name (the key is a policy key): %s", policy)
		}
		t.Add("password", "%s", c.Password)
		t.Add("clientId", "deviceId[/moduleId]: %s", c.ClientID)
		t.Add("username", "hubHost/deviceId[/moduleId]/?api-version=%s: %s", apiVersion, c.Username)
	}
	return c, nil
}
