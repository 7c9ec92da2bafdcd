package vaultstore

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Auth methods the store logs in with (Config.Auth, CREDSIGN_VAULT_AUTH).
const (
	// AuthToken uses Config.Token (VAULT_TOKEN) as it is, renewing it while
	// Vault allows.
	AuthToken = "token"
	// AuthAppRole logs in with Config.RoleID and the secret ID read from
	// Config.SecretIDFile, and logs in again when the token can no longer be
	// renewed.
	AuthAppRole = "approle"
	// AuthKubernetes logs in with Config.K8sRole and the service account
	// token read from Config.K8sTokenFile, and logs in again the same way.
	AuthKubernetes = "kubernetes"
)

// Defaults applied by New for unset fields.
const (
	DefaultMount        = "secret"
	DefaultPrefix       = "credsign/"
	DefaultTimeout      = 10 * time.Second
	DefaultK8sTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// Config says which Vault to use and how to log in. The library reads no
// environment: credsign serve fills it from the environment variables
// named beside each field (cmd/credsign, vaultConfigFromEnv).
type Config struct {
	Address   string // VAULT_ADDR, e.g. https://vault.example:8200
	Token     string // VAULT_TOKEN, for AuthToken
	CACert    string // VAULT_CACERT: PEM file of the CA that signed Vault's certificate
	Namespace string // VAULT_NAMESPACE (Vault Enterprise)

	Mount  string // CREDSIGN_VAULT_MOUNT: KV v2 mount, default "secret"
	Prefix string // CREDSIGN_VAULT_PREFIX: path prefix in the mount, default "credsign/"

	Auth         string // CREDSIGN_VAULT_AUTH: AuthToken (default), AuthAppRole or AuthKubernetes
	AuthMount    string // CREDSIGN_VAULT_AUTH_MOUNT: where the auth method is mounted, default its name
	RoleID       string // CREDSIGN_VAULT_ROLE_ID, for AuthAppRole
	SecretIDFile string // CREDSIGN_VAULT_SECRET_ID_FILE, for AuthAppRole; read at every login
	K8sRole      string // CREDSIGN_VAULT_K8S_ROLE, for AuthKubernetes
	K8sTokenFile string // CREDSIGN_VAULT_K8S_TOKEN_FILE, default DefaultK8sTokenFile; read at every login

	// Timeout bounds each store call, retries included
	// (CREDSIGN_VAULT_TIMEOUT, a Go duration, default 10s).
	Timeout time.Duration
}

// withDefaults fills unset fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Address == "" {
		return c, errors.New("no Vault address (VAULT_ADDR)")
	}
	if c.Mount == "" {
		c.Mount = DefaultMount
	}
	c.Mount = strings.Trim(c.Mount, "/")
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = strings.Trim(c.Prefix, "/") + "/"
	if c.Prefix == "/" || strings.Contains(c.Prefix, "//") || strings.Contains(c.Mount, "//") {
		return c, fmt.Errorf("bad mount %q or prefix %q", c.Mount, c.Prefix)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Auth == "" {
		c.Auth = AuthToken
	}
	if c.AuthMount == "" {
		c.AuthMount = c.Auth
	}
	c.AuthMount = strings.Trim(c.AuthMount, "/")
	switch c.Auth {
	case AuthToken:
		if c.Token == "" {
			return c, errors.New("no Vault token (VAULT_TOKEN) for token auth")
		}
	case AuthAppRole:
		if c.RoleID == "" || c.SecretIDFile == "" {
			return c, errors.New("approle auth needs CREDSIGN_VAULT_ROLE_ID and CREDSIGN_VAULT_SECRET_ID_FILE")
		}
	case AuthKubernetes:
		if c.K8sRole == "" {
			return c, errors.New("kubernetes auth needs CREDSIGN_VAULT_K8S_ROLE")
		}
		if c.K8sTokenFile == "" {
			c.K8sTokenFile = DefaultK8sTokenFile
		}
	default:
		return c, fmt.Errorf("unknown auth method %q (CREDSIGN_VAULT_AUTH: token, approle or kubernetes)", c.Auth)
	}
	return c, nil
}

// String describes the configuration without the token.
func (c Config) String() string {
	tok := ""
	if c.Token != "" {
		tok = "<redacted>"
	}
	return fmt.Sprintf("vaultstore.Config{Address:%q Token:%q Namespace:%q Mount:%q Prefix:%q Auth:%q AuthMount:%q Timeout:%v}",
		c.Address, tok, c.Namespace, c.Mount, c.Prefix, c.Auth, c.AuthMount, c.Timeout)
}

// GoString is String, so %#v does not print the token either.
func (c Config) GoString() string { return c.String() }
