package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"
)

// Credentials is what credsign issues for a device: an MQTT CONNECT triple,
// where to connect, and how long it lasts. Its JSON is the Credentials object of openapi.yaml.
type Credentials struct {
	DeviceID       string     `json:"deviceId"`
	Cloud          string     `json:"cloud"`
	ClientID       string     `json:"clientId"`
	Username       string     `json:"username"`
	Password       string     `json:"password"`
	Host           string     `json:"host"`
	Port           int        `json:"port"`
	TLS            bool       `json:"tls"`
	IssuedAt       time.Time  `json:"issuedAt"`
	ExpiresAt      *time.Time `json:"expiresAt"`
	ExpiryEnforced bool       `json:"expiryEnforced"`
	RefreshAfter   time.Time  `json:"refreshAfter"`
	// ALPN is the TLS application protocol the broker requires ("mqtt"
	// for AWS IoT on port 443); empty when none is needed.
	ALPN string `json:"alpn,omitempty"`
	// Topics are the cloud's standard topics for this device.
	Topics Topics `json:"topics"`
}

// Topics are a cloud's standard MQTT topics for one device, as credsign
// issues them, so that firmware can publish telemetry and receive commands
// without knowing the cloud. Telemetry and Commands are set by every
// credsign that knows topics; the others only where the cloud has them.
// Placeholders in braces ({rid}, {request_id}) are filled per message.
type Topics struct {
	// Telemetry is where the device publishes its data.
	Telemetry string `json:"telemetry"`
	// Commands is the topic or filter to subscribe to for messages and
	// commands from the cloud.
	Commands        string `json:"commands"`
	CommandResponse string `json:"commandResponse,omitempty"`
	PropertyReport  string `json:"propertyReport,omitempty"`
	PropertyReply   string `json:"propertyReply,omitempty"`
	PropertySet     string `json:"propertySet,omitempty"`
	Actions         string `json:"actions,omitempty"`
	Events          string `json:"events,omitempty"`
	ShadowUpdate    string `json:"shadowUpdate,omitempty"`
	ShadowDelta     string `json:"shadowDelta,omitempty"`
	Methods         string `json:"methods,omitempty"`
	MethodResponse  string `json:"methodResponse,omitempty"`
	TwinResponse    string `json:"twinResponse,omitempty"`
	TwinGet         string `json:"twinGet,omitempty"`
	TwinReported    string `json:"twinReported,omitempty"`
	TwinDesired     string `json:"twinDesired,omitempty"`
}

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
		{"CREDSIGN_MQTT_CLOUD", c.Cloud},
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
