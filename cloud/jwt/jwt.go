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
		Title:        "Self-hosted broker with JWT authentication (EMQX, Mosquitto with mosquitto-go-auth)",
		SecretFormat: cloud.SecretNone,
		Tokens:       true,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("host", "Broker host.", cloud.CheckHost),
			cloud.PortParam("Broker port (default 8883 with TLS, 1883 without)."),
			cloud.BoolParam("tls", true, "TLS, or with false plain MQTT."),
			cloud.StringParam("audience", "", "aud claim: what the broker expects (none by default).", nil),
			cloud.StringParam("clientId", "", "MQTT ClientId (default the device id).", cloud.CheckTopicLevel),
			cloud.StringParam("username", "", "MQTT username (default the device id); not with tokenIn=username.", nil),
			cloud.EnumParam("tokenIn", "Which CONNECT field carries the token: the password (EMQX's default \"from\"), or the username, where mosquitto-go-auth's JWT backend reads it (the password is then empty).", "password", "username"),
			{Name: "alg", Type: cloud.TypeString, Allowed: []any{"HS256"}, Description: "HS256 signs with the device's secret, the broker's shared HMAC secret (mosquitto-go-auth's jwt_secret, EMQX's hmac-based secret), at least 32 bytes; absent, the server's token key (ES256, RS256 or EdDSA, published in the JWKS)."},
			{Name: "claims", Type: cloud.TypeObject, Description: "JSON object of extra claims merged into the token (EMQX's acl, for instance); registered claims cannot be overridden.", Check: checkExtraClaim},
			cloud.TelemetryParam("Telemetry topic (default devices/{device id}/telemetry)."),
			cloud.CommandsParam("Commands topic filter (default devices/{device id}/commands/#)."),
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
	inUsername := p.Str("tokenIn", "password") == "username"
	if inUsername && p.Get("username") != nil {
		return cloud.Credentials{}, cloud.Invalid("params.username", "cannot be set with tokenIn=username: the token is the username")
	}
	t := cloud.Token{Subject: sub, Audience: p.Str("audience", ""), Extra: p.Obj("claims")}
	if p.Str("alg", "") == cloud.AlgHS256 {
		if len(in.Secret) < cloud.MinHS256Key {
			return cloud.Credentials{}, cloud.Invalid("secret", "alg HS256 signs with the device's secret, the broker's shared HMAC secret: it must be at least %d bytes (RFC 7518 §3.2), not %d", cloud.MinHS256Key, len(in.Secret))
		}
		t.HMACKey = []byte(in.Secret)
	}
	exp := in.Expiry()
	tok, claims, err := in.SignToken(t, exp)
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
	if inUsername {
		c.Username, c.Password = tok, ""
	}
	if in.Trace.On() {
		if t.HMACKey != nil {
			cloud.TraceHS256(in, claims)
		} else {
			cloud.TraceToken(in, claims)
		}
		t := in.Trace
		if inUsername {
			t.Add("username", "the JWT (tokenIn=username): b64url(header) . b64url(claims) . b64url(signature): %s", tok)
			t.Add("password", "empty: the broker reads the token from the username")
		} else {
			t.Add("password", "the JWT: b64url(header) . b64url(claims) . b64url(signature): %s", tok)
			t.Add("username", "username param, else the device id: %s", c.Username)
		}
		t.Add("clientId", "clientId param, else the device id: %s", c.ClientID)
		t.Add("expiry", "exp %d (issue time + ttl %s); brokers refuse the token after it", exp, in.TTL)
	}
	return c, nil
}
