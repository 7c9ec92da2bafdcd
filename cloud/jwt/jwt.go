package signing

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Self-hosted brokers that verify a JWT password (docs/clouds.md, "jwt").
func init() {
	register(&Cloud{
		Name:         "jwt",
		Title:        "Self-hosted broker with JWT authentication (EMQX, HiveMQ, NanoMQ, Mosquitto go-auth)",
		SecretFormat: SecretNone,
		Tokens:       true,
		Params: []ParamSpec{
			{Name: "host", Type: TypeString, Required: true, Description: "Broker host.", check: checkHost},
			portParam("Broker port (default 8883 with TLS, 1883 without)."),
			{Name: "tls", Type: TypeBoolean, Default: true, Description: "TLS, or with false plain MQTT."},
			{Name: "audience", Type: TypeString, Description: "aud claim: what the broker expects (none by default)."},
			{Name: "clientId", Type: TypeString, Description: "MQTT ClientId (default the device id).", check: checkTopicLevel},
			{Name: "username", Type: TypeString, Description: "MQTT username (default the device id)."},
			{Name: "claims", Type: TypeObject, Description: "JSON object of extra claims merged into the token (EMQX's acl, for instance); registered claims cannot be overridden.", check: checkExtraClaim},
			{Name: "telemetryTopic", Type: TypeString, Description: "Telemetry topic (default devices/{device id}/telemetry).", check: checkTopicName},
			{Name: "commandsTopic", Type: TypeString, Description: "Commands topic filter (default devices/{device id}/commands/#).", check: checkTopicFilter},
		},
		recipe: jwtCloud,
	})
}

// registered are the claims credsign sets itself.
var registered = []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti"}

func checkExtraClaim(name string) error {
	for _, r := range registered {
		if name == r {
			return fmt.Errorf("must not set the registered claim %q: credsign sets it", name)
		}
	}
	return nil
}

func checkTopicLevel(s string) error {
	return forbid("+#/", "it is a level of the device's topics")(s)
}

func checkTopicName(s string) error {
	return forbid("+#", "a topic to publish to has no wildcards")(s)
}

func checkTopicFilter(s string) error {
	for i, level := range strings.Split(s, "/") {
		if strings.Contains(level, "#") && (level != "#" || i != strings.Count(s, "/")) {
			return fmt.Errorf("'#' must be a whole last level")
		}
		if strings.Contains(level, "+") && level != "+" {
			return fmt.Errorf("'+' must be a whole level")
		}
	}
	return nil
}

// token is a JWT being built: the claims credsign sets and the extra ones.
type token struct {
	subject, audience string
	extra             map[string]any
}

// sign returns the compact JWS of t's claims, issued now and expiring at exp.
func (in input) signToken(t token, exp int64) (string, map[string]any, error) {
	jti, err := randomJTI(in.rand)
	if err != nil {
		return "", nil, err
	}
	claims := make(map[string]any, len(t.extra)+len(registered))
	for k, v := range t.extra {
		claims[k] = v
	}
	iat := in.now.Unix()
	claims["iss"], claims["sub"], claims["iat"], claims["nbf"], claims["exp"], claims["jti"] = in.issuer, t.subject, iat, iat, exp, jti
	if t.audience != "" {
		claims["aud"] = t.audience
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", nil, invalid("params.claims", "cannot be encoded as JSON: %v", err)
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{in.alg, in.tokenKey.ID, "JWT"})
	if err != nil {
		return "", nil, fmt.Errorf("signing: token header: %w", err)
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, enc.EncodedLen(len(header))+enc.EncodedLen(len(payload))+2+enc.EncodedLen(512))
	buf = enc.AppendEncode(buf, header)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig, err := signJWS(in.tokenKey.Signer, in.alg, buf, in.rand)
	if err != nil {
		return "", nil, err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), claims, nil
}

func randomJTI(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("signing: read random jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// subject returns the device id the token is about: the Request's
// DeviceID, else the clientId param.
func (in input) subject(field string) (string, error) {
	id := in.deviceID
	if id == "" {
		id = in.params.str("clientId", "")
	}
	if id == "" {
		return "", invalid(field, "is required when no device id is given")
	}
	if strings.ContainsAny(id, "+#/") {
		return "", invalid(field, "device id %q cannot name the device's topics: it has '+', '#' or '/'", clip(id))
	}
	return id, nil
}

func jwtCloud(in input) (Credentials, error) {
	p := in.params
	sub, err := in.subject("params.clientId")
	if err != nil {
		return Credentials{}, err
	}
	exp := in.expiry()
	tok, claims, err := in.signToken(token{subject: sub, audience: p.str("audience", ""), extra: p.obj("claims")}, exp)
	if err != nil {
		return Credentials{}, err
	}
	tls := p.bool("tls", true)
	port := 1883
	if tls {
		port = 8883
	}
	expAt := time.Unix(exp, 0).UTC()
	c := Credentials{
		DeviceID: sub, ClientID: p.str("clientId", sub), Username: p.str("username", sub), Password: tok,
		Host: p.str("host", ""), Port: p.int("port", port), TLS: tls, ExpiresAt: &expAt, ExpiryEnforced: true,
		Topics: Topics{
			Telemetry: p.str("telemetryTopic", "devices/"+sub+"/telemetry"),
			Commands:  p.str("commandsTopic", "devices/"+sub+"/commands/#"),
		},
	}
	if in.trace.on() {
		traceToken(in, claims)
		t := in.trace
		t.add("password", "the JWT: b64url(header) . b64url(claims) . b64url(signature): %s", tok)
		t.add("clientId", "clientId param, else the device id: %s", c.ClientID)
		t.add("username", "username param, else the device id: %s", c.Username)
		t.add("expiry", "exp %d (issue time + ttl %s); brokers refuse the token after it", exp, in.ttl)
	}
	return c, nil
}

// traceToken explains how a token was made.
func traceToken(in input, claims map[string]any) {
	t := in.trace
	t.add("key", "the server's token key %q (%s); the device secret is not used for it", in.tokenKey.ID, in.alg)
	t.add("header", `{"alg":%q,"kid":%q,"typ":"JWT"}`, in.alg, in.tokenKey.ID)
	b, _ := json.Marshal(claims)
	t.add("content", "claims: %s", b)
	switch in.alg {
	case AlgES256:
		t.add("algorithm", "ES256: ECDSA P-256 over SHA-256 of b64url(header) + \".\" + b64url(claims); signature is r||s, 64 bytes")
	case AlgRS256:
		t.add("algorithm", "RS256: RSASSA-PKCS1-v1_5 over SHA-256 of b64url(header) + \".\" + b64url(claims)")
	default:
		t.add("algorithm", "EdDSA: Ed25519 over b64url(header) + \".\" + b64url(claims)")
	}
}
