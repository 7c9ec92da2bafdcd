package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets/vaultstore"
)

func TestVaultConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    vaultstore.Config
		wantErr string
	}{
		{
			name: "defaults",
			env:  map[string]string{"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "tok"},
			want: vaultstore.Config{Address: "http://127.0.0.1:8200", Token: "tok", Mount: "secret", Prefix: "credsign/",
				Auth: vaultstore.AuthToken, K8sTokenFile: vaultstore.DefaultK8sTokenFile, Timeout: 10 * time.Second},
		},
		{
			name: "everything",
			env: map[string]string{
				"VAULT_ADDR": "https://v:8200", "VAULT_CACERT": "/ca.pem", "VAULT_NAMESPACE": "ns1",
				"CREDSIGN_VAULT_MOUNT": "kv", "CREDSIGN_VAULT_PREFIX": "iot/", "CREDSIGN_VAULT_AUTH": "approle",
				"CREDSIGN_VAULT_AUTH_MOUNT": "approle-iot", "CREDSIGN_VAULT_ROLE_ID": "rid",
				"CREDSIGN_VAULT_SECRET_ID_FILE": "/run/sid", "CREDSIGN_VAULT_K8S_ROLE": "credsign",
				"CREDSIGN_VAULT_K8S_TOKEN_FILE": "/t", "CREDSIGN_VAULT_TIMEOUT": "1500ms",
			},
			want: vaultstore.Config{Address: "https://v:8200", CACert: "/ca.pem", Namespace: "ns1", Mount: "kv", Prefix: "iot/",
				Auth: vaultstore.AuthAppRole, AuthMount: "approle-iot", RoleID: "rid", SecretIDFile: "/run/sid",
				K8sRole: "credsign", K8sTokenFile: "/t", Timeout: 1500 * time.Millisecond},
		},
		{name: "bad timeout", env: map[string]string{"CREDSIGN_VAULT_TIMEOUT": "10"}, wantErr: "CREDSIGN_VAULT_TIMEOUT"},
		{name: "negative timeout", env: map[string]string{"CREDSIGN_VAULT_TIMEOUT": "-1s"}, wantErr: "positive duration"},
	}
	vars := []string{"VAULT_ADDR", "VAULT_TOKEN", "VAULT_CACERT", "VAULT_NAMESPACE", "CREDSIGN_VAULT_MOUNT",
		"CREDSIGN_VAULT_PREFIX", "CREDSIGN_VAULT_AUTH", "CREDSIGN_VAULT_AUTH_MOUNT", "CREDSIGN_VAULT_ROLE_ID",
		"CREDSIGN_VAULT_SECRET_ID_FILE", "CREDSIGN_VAULT_K8S_ROLE", "CREDSIGN_VAULT_K8S_TOKEN_FILE", "CREDSIGN_VAULT_TIMEOUT"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := vaultConfigFromEnv(func(v string) string {
				if !slices.Contains(vars, v) {
					t.Errorf("reads %s, not in the list", v)
				}
				return tc.env[v]
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("vaultConfigFromEnv =\n%#v, %v\nwant\n%#v", got, err, tc.want)
			}
		})
	}
}

// TestVaultEnvListed holds serve -h's list of Vault variables to the ones
// vaultConfigFromEnv reads.
func TestVaultEnvListed(t *testing.T) {
	var read []string
	if _, err := vaultConfigFromEnv(func(v string) string { read = append(read, v); return "" }); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, v := range vaultEnv {
		listed = append(listed, v[0])
	}
	slices.Sort(read)
	slices.Sort(listed)
	if !slices.Equal(read, listed) {
		t.Errorf("read %v, listed %v", read, listed)
	}
}
