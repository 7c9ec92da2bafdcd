package signing

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"
)

// AWS IoT Core custom authentication (docs/clouds.md, "aws"; docs/aws.md).
func init() {
	register(&Cloud{
		Name:         "aws",
		Title:        "AWS IoT Core, custom authorizer",
		SecretFormat: SecretPEM,
		Tokens:       true,
		Params: []ParamSpec{
			{Name: "endpoint", Type: TypeString, Required: true, Description: "Device data endpoint, xxxx-ats.iot.{region}.amazonaws.com (aws iot describe-endpoint --endpoint-type iot:Data-ATS).", check: checkHost},
			{Name: "authorizerName", Type: TypeString, Required: true, Description: "Name of the custom authorizer.", check: checkQueryWord},
			{Name: "tokenKeyName", Type: TypeString, Default: "token", Description: "The authorizer's token key name: the username query parameter that carries the token.", check: checkQueryWord},
			{Name: "clientId", Type: TypeString, Description: "MQTT ClientId and token subject (default the device id).", check: checkAWSClientID},
			portParam("Broker port (default 443, TLS with ALPN mqtt)."),
			{Name: "telemetryTopic", Type: TypeString, Description: "Telemetry topic (default dt/credsign/{clientId}/telemetry).", check: checkTopicName},
			{Name: "commandsTopic", Type: TypeString, Description: "Commands topic filter (default cmd/credsign/{clientId}/#).", check: checkTopicFilter},
		},
		recipe: aws,
	})
}

func checkQueryWord(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("must be letters, digits, '-', '_' or '.' (AWS authorizer names and token key names are)")
		}
	}
	return nil
}

func checkAWSClientID(s string) error {
	if err := checkTopicLevel(s); err != nil {
		return err
	}
	return forbid("?&=", "the username carries it before its query string")(s)
}

func aws(in input) (Credentials, error) {
	p := in.params
	clientID, err := in.subject("params.clientId")
	if err != nil {
		return Credentials{}, err
	}
	if err := checkAWSClientID(clientID); err != nil {
		return Credentials{}, invalid("params.clientId", "%s", err.Error())
	}
	endpoint := p.str("endpoint", "")
	name := p.str("authorizerName", "")
	keyName := p.str("tokenKeyName", "token")
	exp := in.expiry()
	tok, claims, err := in.signToken(token{subject: clientID, audience: endpoint}, exp)
	if err != nil {
		return Credentials{}, err
	}
	// AWS checks this signature with the authorizer's token-signing public
	// key before it calls the authorizer function.
	h := sha256.Sum256([]byte(tok))
	sig, err := rsa.SignPKCS1v15(nil, in.rsaKey, crypto.SHA256, h[:])
	if err != nil {
		return Credentials{}, fmt.Errorf("signing: aws token signature: %w", err)
	}
	b64sig := base64.StdEncoding.EncodeToString(sig)

	port := p.int("port", 443)
	expAt := time.Unix(exp, 0).UTC()
	c := Credentials{DeviceID: clientID, ClientID: clientID, Host: endpoint, Port: port, TLS: true, ExpiresAt: &expAt, ExpiryEnforced: true}
	if port == 443 {
		c.ALPN = "mqtt"
	}
	u := make([]byte, 0, len(clientID)+len(tok)+len(b64sig)+len(name)+len(keyName)+120)
	u = append(u, clientID...)
	u = append(u, "?x-amz-customauthorizer-name="...)
	u = appendQueryEscape(u, name)
	u = append(u, "&x-amz-customauthorizer-signature="...)
	u = appendQueryEscape(u, b64sig)
	u = append(u, '&')
	u = appendQueryEscape(u, keyName)
	u = append(u, '=')
	u = appendQueryEscape(u, tok)
	c.Username = string(u)
	c.Topics = Topics{
		Telemetry:    p.str("telemetryTopic", "dt/credsign/"+clientID+"/telemetry"),
		Commands:     p.str("commandsTopic", "cmd/credsign/"+clientID+"/#"),
		ShadowUpdate: "$aws/things/" + clientID + "/shadow/update",
		ShadowDelta:  "$aws/things/" + clientID + "/shadow/update/delta",
	}
	if in.trace.on() {
		traceToken(in, claims)
		t := in.trace
		t.add("token", "the JWT, verified by the authorizer function against credsign's JWKS: %s", tok)
		t.add("signature", "b64(RSA-SHA256(token-signing key, token)) with the device's secret %s, checked by AWS with the authorizer's public key: %s", redacted(in.secret), b64sig)
		t.add("username", "clientId?x-amz-customauthorizer-name=NAME&x-amz-customauthorizer-signature=urlenc(signature)&%s=urlenc(token): %s", keyName, c.Username)
		t.add("password", "empty: the authorizer reads the token from the username")
		t.add("clientId", "clientId param, else the device id: %s", c.ClientID)
		if c.ALPN != "" {
			t.add("alpn", "port 443 needs TLS with ALPN %q", c.ALPN)
		}
		t.add("expiry", "exp %d (issue time + ttl %s); the authorizer refuses the token after it and disconnects at it", exp, in.ttl)
	}
	return c, nil
}
