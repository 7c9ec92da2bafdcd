package aws

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
)

// Backend is AWS IoT Core custom authentication (docs/clouds.md, "aws"; docs/aws.md).
type Backend struct{}

// Describe implements cloud.Backend: the cloud's name, params, limits and recipe.
func (Backend) Describe() *cloud.Cloud {
	return &cloud.Cloud{
		Name:         "aws",
		Title:        "AWS IoT Core, custom authorizer",
		SecretFormat: cloud.SecretPEM,
		Tokens:       true,
		Params: []cloud.ParamSpec{
			cloud.RequiredParam("endpoint", "Device data endpoint, xxxx-ats.iot.{region}.amazonaws.com (aws iot describe-endpoint --endpoint-type iot:Data-ATS).", cloud.CheckHost),
			cloud.RequiredParam("authorizerName", "Name of the custom authorizer.", checkQueryWord),
			cloud.StringParam("tokenKeyName", "token", "The authorizer's token key name: the username query parameter that carries the token.", checkQueryWord),
			cloud.StringParam("clientId", "", "MQTT ClientId and token subject (default the device id).", checkAWSClientID),
			cloud.PortParam("Broker port (default 443, TLS with ALPN mqtt)."),
			cloud.TelemetryParam("Telemetry topic (default dt/credsign/{clientId}/telemetry)."),
			cloud.CommandsParam("Commands topic filter (default cmd/credsign/{clientId}/#)."),
		},
		Recipe: aws,
	}
}

func checkQueryWord(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !cloud.IsAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("must be letters, digits, '-', '_' or '.' (AWS authorizer names and token key names are)")
		}
	}
	return nil
}

// appendPyQuote escapes a base64 signature as AWS's device SDK does:
// aws/aws-iot-device-sdk-python-v2 awsiot/mqtt_connection_builder.py
// _with_custom_authorizer applies urllib.parse.quote, whose safe set is
// letters, digits, "_.-~" and "/", so '+' and '=' are escaped and '/' is
// kept. The authorizer name and the token it appends unescaped; their
// checks (checkQueryWord, the JWT alphabet) leave nothing to escape.
func appendPyQuote(dst []byte, s string) []byte {
	const upperhex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if cloud.IsAlnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperhex[c>>4], upperhex[c&15])
	}
	return dst
}

func checkAWSClientID(s string) error {
	if err := cloud.CheckTopicLevel(s); err != nil {
		return err
	}
	return cloud.Forbid("?&=", "the username carries it before its query string")(s)
}

func aws(in cloud.Input) (cloud.Credentials, error) {
	p := in.Params
	clientID, err := in.Subject("params.clientId")
	if err != nil {
		return cloud.Credentials{}, err
	}
	if err := checkAWSClientID(clientID); err != nil {
		return cloud.Credentials{}, cloud.Invalid("params.clientId", "%s", err.Error())
	}
	endpoint := p.Str("endpoint", "")
	name := p.Str("authorizerName", "")
	keyName := p.Str("tokenKeyName", "token")
	exp := in.Expiry()
	tok, claims, err := in.SignToken(cloud.Token{Subject: clientID, Audience: endpoint}, exp)
	if err != nil {
		return cloud.Credentials{}, err
	}
	// AWS checks this signature with the authorizer's token-signing public
	// key before it calls the authorizer function.
	h := sha256.Sum256([]byte(tok))
	sig, err := rsa.SignPKCS1v15(nil, in.RSAKey, crypto.SHA256, h[:])
	if err != nil {
		return cloud.Credentials{}, fmt.Errorf("signing: aws token signature: %w", err)
	}
	b64sig := base64.StdEncoding.EncodeToString(sig)

	port := p.Int("port", 443)
	expAt := time.Unix(exp, 0).UTC()
	c := cloud.Credentials{DeviceID: clientID, ClientID: clientID, Host: endpoint, Port: port, TLS: true, ExpiresAt: &expAt, ExpiryEnforced: true}
	if port == 443 {
		c.ALPN = "mqtt"
	}
	u := make([]byte, 0, len(clientID)+len(tok)+len(b64sig)+len(name)+len(keyName)+120)
	u = append(u, clientID...)
	u = append(u, "?x-amz-customauthorizer-name="...)
	u = cloud.AppendQueryEscape(u, name)
	u = append(u, "&x-amz-customauthorizer-signature="...)
	u = appendPyQuote(u, b64sig)
	u = append(u, '&')
	u = cloud.AppendQueryEscape(u, keyName)
	u = append(u, '=')
	u = cloud.AppendQueryEscape(u, tok)
	c.Username = string(u)
	c.Topics = cloud.Topics{
		Telemetry:    p.Str("telemetryTopic", "dt/credsign/"+clientID+"/telemetry"),
		Commands:     p.Str("commandsTopic", "cmd/credsign/"+clientID+"/#"),
		ShadowUpdate: "$aws/things/" + clientID + "/shadow/update",
		ShadowDelta:  "$aws/things/" + clientID + "/shadow/update/delta",
	}
	if in.Trace.On() {
		cloud.TraceToken(in, claims)
		t := in.Trace
		t.Add("token", "the JWT, verified by the authorizer function against credsign's JWKS: %s", tok)
		t.Add("signature", "b64(RSA-SHA256(token-signing key, token)) with the device's secret %s, checked by AWS with the authorizer's public key: %s", cloud.Redacted(in.Secret), b64sig)
		t.Add("username", "clientId?x-amz-customauthorizer-name=NAME&x-amz-customauthorizer-signature=quote(signature)&%s=token (quote: Python urllib.parse.quote, which keeps '/', as AWS's Python SDK escapes it): %s", keyName, c.Username)
		t.Add("password", "empty: the authorizer reads the token from the username")
		t.Add("clientId", "clientId param, else the device id: %s", c.ClientID)
		if c.ALPN != "" {
			t.Add("alpn", "port 443 needs TLS with ALPN %q", c.ALPN)
		}
		t.Add("expiry", "exp %d (issue time + ttl %s); the authorizer refuses the token after it and disconnects at it", exp, in.TTL)
	}
	return c, nil
}
