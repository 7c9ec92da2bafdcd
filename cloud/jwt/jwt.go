package jwt

import (
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
)

// Backend is Self-hosted brokers that verify a JWT password (docs/clouds.md, "jwt").
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "jwt",
		Title:        "Self-hosted broker with JWT authentication (EMQX, HiveMQ, NanoMQ, Mosquitto go-auth)",
		SecretFormat: cloud.SecretNone,
		Tokens:       true,
		Params: []cloud.ParamSpec{
			{Name: "host", Type: cloud.TypeString, Required: true, Description: "Broker host.", Check: cloud.CheckHost},
			cloud.PortParam("Broker port (default 8883 with TLS, 1883 without)."),
			{Name: "tls", Type: cloud.TypeBoolean, Default: true, Description: "TLS, or with false plain MQTT."},
			{Name: "audience", Type: cloud.TypeString, Description: "aud claim: what the broker expects (none by default)."},
			{Name: "clientId", Type: cloud.TypeString, Description: "MQTT ClientId (default the device id).", Check: cloud.CheckTopicLevel},
			{Name: "username", Type: cloud.TypeString, Description: "MQTT username (default the device id)."},
			{Name: "claims", Type: cloud.TypeObject, Description: "JSON object of extra claims merged into the token (EMQX's acl, for instance); registered claims cannot be overridden.", Check: checkExtraClaim},
			{Name: "telemetryTopic", Type: cloud.TypeString, Description: "Telemetry topic (default devices/{device id}/telemetry).", Check: cloud.CheckTopicName},
			{Name: "commandsTopic", Type: cloud.TypeString, Description: "Commands topic filter (default devices/{device id}/commands/#).", Check: cloud.CheckTopicFilter},
		},
		Recipe: jwtCloud,
	}
}

func checkExtraClaim(name string) error {
	for _, r := range cloud.RegisteredClaims {
		if name == r {
			return fmt.Errorf("must not set the registered claim %q: credsign sets it", name)
		}
	}
	return nil
}

func jwtCloud(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	sub, err := in.Subject("params.clientId")
	if err != nil {
		return cloud.Credentials{}, err
	}
	exp := in.Expiry()
	tok, claims, err := in.SignToken(cloud.Token{Subject: sub, Audience: p.Str("audience", ""), Extra: p.Obj("claims")}, exp)
	if err != nil {
		return cloud.Credentials{}, err
	}
	tls := p.Bool("tls", true)
	port := 1883
	if tls {
		port = 8883
	}
	expAt := time.Unix(exp, 0).UTC()
	c := cloud.Credentials{
		DeviceID: sub, ClientID: p.Str("clientId", sub), Username: p.Str("username", sub), Password: tok,
		Host: p.Str("host", ""), Port: p.Int("port", port), TLS: tls, ExpiresAt: &expAt, ExpiryEnforced: true,
		Topics: cloud.Topics{
			Telemetry: p.Str("telemetryTopic", "devices/"+sub+"/telemetry"),
			Commands:  p.Str("commandsTopic", "devices/"+sub+"/commands/#"),
		},
	}
	if in.Trace.On() {
		cloud.TraceToken(in, claims)
		t := in.Trace
		t.Add("password", "the JWT: b64url(header) . b64url(claims) . b64url(signature): %s", tok)
		t.Add("clientId", "clientId param, else the device id: %s", c.ClientID)
		t.Add("username", "username param, else the device id: %s", c.Username)
		t.Add("expiry", "exp %d (issue time + ttl %s); brokers refuse the token after it", exp, in.TTL)
	}
	return c, nil
}
