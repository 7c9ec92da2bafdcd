package main

import (
	"fmt"
	"time"

	"github.com/credsign/credsign/secrets/vaultstore"
)

// vaultEnv are the environment variables serve reads the Vault store's
// settings from, with what each sets (shown in the Vault group of
// `credsign serve -h`).
var vaultEnv = [][2]string{
	{"VAULT_ADDR", "Vault's URL, e.g. https://vault.example:8200 (setting it makes --store default to vault)"},
	{"VAULT_TOKEN", "token for CREDSIGN_VAULT_AUTH=token"},
	{"VAULT_CACERT", "PEM file of the CA that signed Vault's certificate"},
	{"VAULT_NAMESPACE", "Vault Enterprise namespace"},
	{"CREDSIGN_VAULT_MOUNT", "KV v2 mount (default " + vaultstore.DefaultMount + ")"},
	{"CREDSIGN_VAULT_PREFIX", "path prefix in the mount (default " + vaultstore.DefaultPrefix + ")"},
	{"CREDSIGN_VAULT_AUTH", "token (default), approle or kubernetes"},
	{"CREDSIGN_VAULT_AUTH_MOUNT", "where the auth method is mounted (default its name)"},
	{"CREDSIGN_VAULT_ROLE_ID", "AppRole role ID"},
	{"CREDSIGN_VAULT_SECRET_ID_FILE", "file of the AppRole secret ID, read at every login"},
	{"CREDSIGN_VAULT_K8S_ROLE", "Vault role for Kubernetes auth"},
	{"CREDSIGN_VAULT_K8S_TOKEN_FILE", "service account token file (default " + vaultstore.DefaultK8sTokenFile + ")"},
	{"CREDSIGN_VAULT_TIMEOUT", "bound on each store call, retries included (default " + vaultstore.DefaultTimeout.String() + ")"},
}

// vaultConfigFromEnv reads the Vault store's settings from the environment
// variables of vaultEnv: the one place they are read. It only parses;
// vaultstore.New checks the result.
func vaultConfigFromEnv(getenv func(string) string) (vaultstore.Config, error) {
	or := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	cfg := vaultstore.Config{
		Address:      getenv("VAULT_ADDR"),
		Token:        getenv("VAULT_TOKEN"),
		CACert:       getenv("VAULT_CACERT"),
		Namespace:    getenv("VAULT_NAMESPACE"),
		Mount:        or("CREDSIGN_VAULT_MOUNT", vaultstore.DefaultMount),
		Prefix:       or("CREDSIGN_VAULT_PREFIX", vaultstore.DefaultPrefix),
		Auth:         or("CREDSIGN_VAULT_AUTH", vaultstore.AuthToken),
		AuthMount:    getenv("CREDSIGN_VAULT_AUTH_MOUNT"),
		RoleID:       getenv("CREDSIGN_VAULT_ROLE_ID"),
		SecretIDFile: getenv("CREDSIGN_VAULT_SECRET_ID_FILE"),
		K8sRole:      getenv("CREDSIGN_VAULT_K8S_ROLE"),
		K8sTokenFile: or("CREDSIGN_VAULT_K8S_TOKEN_FILE", vaultstore.DefaultK8sTokenFile),
		Timeout:      vaultstore.DefaultTimeout,
	}
	if v := getenv("CREDSIGN_VAULT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return vaultstore.Config{}, fmt.Errorf("CREDSIGN_VAULT_TIMEOUT=%q: want a positive duration such as 10s", v)
		}
		cfg.Timeout = d
	}
	return cfg, nil
}
