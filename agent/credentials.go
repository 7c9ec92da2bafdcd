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
	return fmt.Sprintf("%s device %s at %s (tls=%t), client id %q, expires %s", c.Cloud, c.DeviceID, c.Addr(), c.TLS, c.ClientID, exp)
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
// _EXPIRES_AT (empty when nothing expires) and _CLOUD.
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
	// when nothing expires.
	window := c.RefreshAfter.Sub(c.IssuedAt) / 20
	if c.ExpiresAt != nil {
		window = c.ExpiresAt.Sub(c.RefreshAfter) / 4
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
