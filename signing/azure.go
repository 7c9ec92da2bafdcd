package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
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

	resource := hub + "/devices/" + deviceID
	clientID := deviceID
	identity := hub + "/" + deviceID
	if moduleID != "" {
		resource += "/modules/" + moduleID
		clientID += "/" + moduleID
		identity += "/" + moduleID
	}
	sr := url.QueryEscape(resource)
	se := in.expiry()

	buf := make([]byte, 0, len(sr)+128)
	buf = append(buf, sr...)
	buf = append(buf, '\n')
	buf = strconv.AppendInt(buf, se, 10)
	signed := len(buf)

	key, _ := base64.StdEncoding.DecodeString(in.secret) // checked by checkSecret
	sig := azureSig(key, buf)

	pw := buf[signed:]
	pw = append(pw, "SharedAccessSignature sr="...)
	pw = append(pw, sr...)
	pw = append(pw, "&sig="...)
	pw = append(pw, url.QueryEscape(sig)...)
	pw = append(pw, "&se="...)
	pw = strconv.AppendInt(pw, se, 10)
	if policy != "" {
		pw = append(pw, "&skn="...)
		pw = append(pw, url.QueryEscape(policy)...)
	}
	password := string(pw)
	username := identity + "/?api-version=" + apiVersion

	exp := time.Unix(se, 0).UTC()
	if in.trace.on() {
		t := in.trace
		t.add("resource", "hubHost/devices/deviceId[/modules/moduleId]: %s", resource)
		t.add("sr", "URL-encoded resource: %s", sr)
		t.add("se", "expiry in Unix seconds (issue time + ttl %s): %d; the hub disconnects the client then", in.ttl, se)
		t.add("content", "string signed: sr + \"\\n\" + se = %q", buf[:signed])
		t.add("key", "%s", base64KeyNote(in.secret))
		t.add("algorithm", "HMAC-SHA256")
		t.add("sig", "standard base64 of the HMAC: %s, URL-encoded in the password", sig)
		if policy != "" {
			t.add("skn", "shared access policy name (the key is a policy key): %s", policy)
		}
		t.add("password", "%s", password)
		t.add("clientId", "deviceId[/moduleId]: %s", clientID)
		t.add("username", "hubHost/deviceId[/moduleId]/?api-version=%s: %s", apiVersion, username)
	}
	return Credentials{
		DeviceID:       deviceID,
		ClientID:       clientID,
		Username:       username,
		Password:       password,
		Host:           p.str("host", hub),
		Port:           p.int("port", 8883),
		TLS:            true,
		ExpiresAt:      &exp,
		ExpiryEnforced: true,
	}, nil
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
