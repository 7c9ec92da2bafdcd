package vaultstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credsign/credsign/internal/testing/vaulttest"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/storetest"
)

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// policyToken installs deployments/vault/credsign-policy.hcl and returns a
// token that has only that policy, so the tests prove it is enough.
func policyToken(t *testing.T, srv *vaulttest.Server, ttl string) string {
	t.Helper()
	root := srv.Client(t)
	hcl, err := os.ReadFile("../../deployments/vault/credsign-policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("credsign", string(hcl)); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{
		Policies:        []string{"credsign"},
		NoDefaultPolicy: true,
		TTL:             ttl,
		Renewable:       func() *bool { b := true; return &b }(),
	})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return sec.Auth.ClientToken
}

// newStore opens a store with cfg, closed when t ends.
func newStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s := openStore(t, cfg, nil)
	t.Cleanup(func() { s.Close() })
	return s
}

// openStore opens a store with cfg and logger (nil: none); the caller
// closes it.
func openStore(t *testing.T, cfg Config, logger *slog.Logger) *Store {
	t.Helper()
	s, err := New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func baseConfig(srv *vaulttest.Server, token string) Config {
	return Config{Address: srv.Addr, Token: token, Prefix: randomName("credsign/t-") + "/", Timeout: 5 * time.Second}
}

func TestConformance(t *testing.T) {
	srv := vaulttest.Start(t)
	token := policyToken(t, srv, "1h")
	storetest.Run(t, func(t *testing.T) secrets.Store {
		return newStore(t, baseConfig(srv, token))
	})
}

// TestVaultCLIReadsDevice checks the documented command reads a device back:
// vault kv get -mount=secret credsign/devices/lamp-7
func TestVaultCLIReadsDevice(t *testing.T) {
	srv := vaulttest.Start(t)
	cfg := baseConfig(srv, policyToken(t, srv, "1h"))
	cfg.Prefix = "" // the default, credsign/
	s := newStore(t, cfg)
	d := secrets.Device{ID: "lamp-7", Cloud: "aliyun", Params: map[string]any{"productKey": "a1", "deviceName": "lamp-7"},
		Secret: storetest.NewSecret(), Labels: map[string]string{"site": "sz"}}
	if _, err := s.PutDevice(context.Background(), d, 0); err != nil {
		t.Fatal(err)
	}
	bin, err := vaulttest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "kv", "get", "-mount=secret", "-format=json", "credsign/devices/lamp-7")
	cmd.Env = []string{"VAULT_ADDR=" + srv.Addr, "VAULT_TOKEN=" + srv.RootToken, "HOME=" + t.TempDir()}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("vault kv get: %v", err)
	}
	var got struct {
		Data struct {
			Data     map[string]any `json:"data"`
			Metadata struct {
				Version int64 `json:"version"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("vault kv get output: %v", err)
	}
	data := got.Data.Data
	if data["secret"] != d.Secret || data["cloud"] != "aliyun" || data["id"] != "lamp-7" || got.Data.Metadata.Version != 1 {
		t.Fatalf("vault kv get shows cloud %v id %v version %d (secret matches: %v)",
			data["cloud"], data["id"], got.Data.Metadata.Version, data["secret"] == d.Secret)
	}
}

// writtenDevice starts a Vault and a store on it, and writes device id n
// times (KV versions 1 to n).
func writtenDevice(t *testing.T, id string, n int64) (*vaulttest.Server, Config, *Store, secrets.Device) {
	t.Helper()
	srv := vaulttest.Start(t)
	cfg := baseConfig(srv, srv.RootToken)
	s := newStore(t, cfg)
	d := secrets.Device{ID: id, Cloud: "aliyun", Secret: storetest.NewSecret()}
	for v := range n {
		if _, err := s.PutDevice(context.Background(), d, v); err != nil {
			t.Fatal(err)
		}
	}
	return srv, cfg, s, d
}

// TestSoftDeletedDevice: a device whose latest KV version an operator
// deleted by hand (vault kv delete) reads as absent, and a create (one
// check-and-set write of 0, refused by Vault here) writes over it.
func TestSoftDeletedDevice(t *testing.T) {
	srv, cfg, s, d := writtenDevice(t, "soft", 2)
	ctx := context.Background()
	if err := srv.Client(t).KVv2("secret").Delete(ctx, cfg.Prefix+"devices/soft"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDevice(ctx, "soft"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("GetDevice of a soft-deleted device: %v, want not found", err)
	}
	got, err := s.PutDevice(ctx, d, 0)
	if err != nil {
		t.Fatalf("create over a soft-deleted device: %v", err)
	}
	if got.Version != 3 {
		t.Fatalf("version %d, want 3 (the KV version after two writes and a delete)", got.Version)
	}
	if _, err := s.PutDevice(ctx, d, 0); !errors.Is(err, secrets.ErrConflict) {
		t.Fatalf("second create: %v, want a conflict", err)
	}
	if back, err := s.GetDevice(ctx, "soft"); err != nil || back.Secret != d.Secret {
		t.Fatalf("GetDevice after the create: %v", err)
	}
}

// TestDeleteRemovesEveryVersion reads KV metadata and old versions directly.
func TestDeleteRemovesEveryVersion(t *testing.T) {
	srv, cfg, s, _ := writtenDevice(t, "doomed", 3)
	ctx := context.Background()
	if err := s.DeleteDevice(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	root := srv.Client(t)
	md, err := root.KVv2("secret").GetMetadata(ctx, cfg.Prefix+"devices/doomed")
	if !errors.Is(err, api.ErrSecretNotFound) || md != nil {
		t.Fatalf("metadata after delete: %+v, %v; want not found", md, err)
	}
	for v := 1; v <= 3; v++ {
		sec, err := root.KVv2("secret").GetVersion(ctx, cfg.Prefix+"devices/doomed", v)
		if !errors.Is(err, api.ErrSecretNotFound) || sec != nil {
			t.Fatalf("version %d after delete: %v; want not found", v, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	srv := vaulttest.Start(t)
	closedPort := func() string {
		s := vaulttest.Start(t)
		s.Stop()
		return s.Addr
	}()
	secretIDFile := filepath.Join(t.TempDir(), "secret-id")
	os.WriteFile(secretIDFile, []byte("not-a-real-secret-id-123\n"), 0o600)
	tests := []struct {
		name      string
		cfg       Config
		wantMsg   string
		wantErr   error
		forbidden string // must not appear in the error
	}{
		{"no address", Config{Token: "x"}, "no Vault address", nil, ""},
		{"no token", Config{Address: srv.Addr}, "no Vault token", nil, ""},
		{"unknown auth", Config{Address: srv.Addr, Auth: "ldap"}, `unknown auth method "ldap"`, nil, ""},
		{"approle without role", Config{Address: srv.Addr, Auth: AuthAppRole}, "CREDSIGN_VAULT_ROLE_ID", nil, ""},
		{"kubernetes without role", Config{Address: srv.Addr, Auth: AuthKubernetes}, "CREDSIGN_VAULT_K8S_ROLE", nil, ""},
		{"wrong token", Config{Address: srv.Addr, Token: "hvs.wrong-token-value"}, "token (VAULT_TOKEN) rejected by Vault", secrets.ErrUnavailable, "wrong-token-value"},
		{"nothing listening", Config{Address: closedPort, Token: srv.RootToken}, "cannot reach Vault", secrets.ErrUnavailable, srv.RootToken},
		{"not http", Config{Address: "ftp://127.0.0.1:1", Token: srv.RootToken}, "cannot reach Vault", secrets.ErrUnavailable, srv.RootToken},
		{"missing mount", Config{Address: srv.Addr, Token: srv.RootToken, Mount: "nope"}, `KV mount "nope" not found`, nil, srv.RootToken},
		{"KV v1 mount", Config{Address: srv.Addr, Token: srv.RootToken, Mount: "cubbyhole"}, `not KV version 2`, nil, srv.RootToken},
		{"missing CA file", Config{Address: srv.Addr, Token: srv.RootToken, CACert: "/nonexistent/ca.pem"}, "CA certificate", nil, ""},
		{"approle not enabled", Config{Address: srv.Addr, Auth: AuthAppRole, RoleID: "r", SecretIDFile: secretIDFile}, "approle login", nil, "not-a-real-secret-id-123"},
		{"secret ID file missing", Config{Address: srv.Addr, Auth: AuthAppRole, RoleID: "r", SecretIDFile: "/nonexistent"}, "secret ID file", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Timeout = 5 * time.Second
			start := time.Now()
			s, err := New(context.Background(), tc.cfg, nil)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if d := time.Since(start); d > 6*time.Second {
				t.Errorf("New took %v to fail", d)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.HasPrefix(err.Error(), "vaultstore: ") {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v is not %v", err, tc.wantErr)
			}
			if tc.forbidden != "" && strings.Contains(err.Error(), tc.forbidden) {
				t.Errorf("error contains a credential: %v", err)
			}
		})
	}
}

func TestConfigStringRedactsToken(t *testing.T) {
	cfg := Config{Address: "http://v", Token: "hvs.super-secret-token"}
	for _, s := range []string{cfg.String(), cfg.GoString()} {
		if strings.Contains(s, "super-secret") || !strings.Contains(s, "<redacted>") {
			t.Fatalf("config prints as %s", s)
		}
	}
}
