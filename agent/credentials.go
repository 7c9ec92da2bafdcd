package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/credsign/credsign/agent/client"
)

// Credentials is what credsign issues for a device: an MQTT CONNECT triple,
// where to connect, how long it lasts and the cloud's topics. It is the
// Credentials object of openapi.yaml as agent/client generates it (the
// wire shape is written once, in the spec), with the agent's methods.
type Credentials client.Credentials

// Topics are a cloud's standard MQTT topics for one device, as credsign
// issues them, so that firmware can publish telemetry and receive commands
// without knowing the cloud. Telemetry and Commands are set by every
// credsign that knows topics; the others ("" when absent) only where the
// cloud has them. Placeholders in braces ({rid}, {request_id}) are filled
// per message. It is the generated client.Topics.
type Topics = client.Topics

// String describes the credentials without the password.
func (c Credentials) String() string {
	exp := "never"
	if c.ExpiresAt != nil {
		exp = c.ExpiresAt.UTC().Format(time.RFC3339)
		if !c.ExpiryEnforced {
			exp += " (not enforced)"
		}
	}
	alpn := ""
	if c.ALPN != "" {
		alpn = ", alpn " + c.ALPN
	}
	return fmt.Sprintf("%s device %s at %s (tls=%t%s), client id %q, expires %s", c.Cloud, c.DeviceID, c.Addr(), c.TLS, alpn, c.ClientID, exp)
}

// Addr returns host:port of the broker.
func (c Credentials) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// BrokerURL returns the broker address as paho wants it: ssl://… or tcp://….
func (c Credentials) BrokerURL() string {
	if c.TLS {
		return "ssl://" + c.Addr()
	}
	return "tcp://" + c.Addr()
}

// Env returns the credentials as environment variables for a child process:
// CREDSIGN_MQTT_HOST, _PORT, _TLS, _CLIENT_ID, _USERNAME, _PASSWORD,
// _EXPIRES_AT (empty when nothing expires), _CLOUD, _ALPN (empty when none
// is needed), _TELEMETRY_TOPIC and _COMMANDS_TOPIC.
func (c Credentials) Env() []EnvVar {
	exp := ""
	if c.ExpiresAt != nil {
		exp = c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return []EnvVar{
		{"CREDSIGN_MQTT_HOST", c.Host},
		{"CREDSIGN_MQTT_PORT", strconv.Itoa(c.Port)},
		{"CREDSIGN_MQTT_TLS", strconv.FormatBool(c.TLS)},
		{"CREDSIGN_MQTT_CLIENT_ID", c.ClientID},
		{"CREDSIGN_MQTT_USERNAME", c.Username},
		{"CREDSIGN_MQTT_PASSWORD", c.Password},
		{"CREDSIGN_MQTT_EXPIRES_AT", exp},
		{"CREDSIGN_MQTT_CLOUD", string(c.Cloud)},
		{"CREDSIGN_MQTT_ALPN", c.ALPN},
		{"CREDSIGN_MQTT_TELEMETRY_TOPIC", c.Topics.Telemetry},
		{"CREDSIGN_MQTT_COMMANDS_TOPIC", c.Topics.Commands},
	}
}

// Validate reports whether the credentials can be used to connect.
func (c Credentials) Validate() error {
	switch {
	case c.ClientID == "":
		return errors.New("credentials have no client id")
	case c.Host == "":
		return errors.New("credentials have no broker host")
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("credentials have broker port %d", c.Port)
	}
	return nil
}

// RefreshAt returns when an agent should fetch new credentials: RefreshAfter
// plus a random jitter that stays well before an expiry, so that a fleet
// does not refresh in lockstep. The zero time means never.
func (c Credentials) RefreshAt() time.Time {
	if c.RefreshAfter.IsZero() {
		return time.Time{}
	}
	// Up to a quarter of the remaining window, or 5% of the lifetime so far
	// when nothing expires. A cloud's fixed window (Baidu's 10 minutes,
	// Huawei's hour) can outlast a short requested ttl by far: the jitter
	// then stays within half the time to refreshAfter, so that the ttl
	// still sets the pace.
	window := c.RefreshAfter.Sub(c.IssuedAt) / 20
	if c.ExpiresAt != nil {
		window = min(c.ExpiresAt.Sub(c.RefreshAfter)/4, c.RefreshAfter.Sub(c.IssuedAt)/2)
	}
	if window <= 0 {
		return c.RefreshAfter
	}
	return c.RefreshAfter.Add(rand.N(window))
}

// Source hands out current credentials for one device.
type Source interface {
	// Fetch asks for a fresh triple. Errors the caller may retry after a
	// while are *FetchError with RetryAfter set, or network errors.
	Fetch(ctx context.Context) (Credentials, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (Credentials, error)

// Fetch calls f.
func (f SourceFunc) Fetch(ctx context.Context) (Credentials, error) { return f(ctx) }
