package service

import (
	"context"
	"os"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/credsign/credsign/internal/testing/vaulttest"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/vaultstore"
)

// TestEnrolConcurrentAtLimitVault is TestEnrolConcurrentAtLimit on a real
// Vault, whose KV check-and-set counts the uses.
func TestEnrolConcurrentAtLimitVault(t *testing.T) {
	s, st := newVaultService(t, Config{})
	racingEnrolments(t, s, st)
}

// TestEnrolGroupCreatedAgainVault is TestEnrolGroupCreatedAgain on a real
// Vault: the group's CreatedAt, kept by KV, tells the groups apart.
func TestEnrolGroupCreatedAgainVault(t *testing.T) {
	s, st := newVaultService(t, Config{})
	enrolGroupCreatedAgain(t, s, st)
}

// TestEnrolFailureBudgetVault is TestEnrolFailureBudget on a real Vault.
func TestEnrolFailureBudgetVault(t *testing.T) {
	reg := &failingRegistrar{}
	s, st := newVaultService(t, Config{Registrar: reg, MaxEnrolmentFailures: 3})
	enrolFailureBudget(t, s, st, reg)
}

// newVaultService returns a Service on a real Vault (skipped without one),
// with a token that has only deployments/vault/credsign-policy.hcl: groups
// and enrolment tokens need nothing more.
func newVaultService(t *testing.T, cfg Config) (*Service, secrets.Store) {
	t.Helper()
	srv := vaulttest.Start(t)
	root := srv.Client(t)
	hcl, err := os.ReadFile("../deployments/vault/credsign-policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("credsign", string(hcl)); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"credsign"}, NoDefaultPolicy: true, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := vaultstore.New(context.Background(), vaultstore.Config{Address: srv.Addr, Token: tok.Auth.ClientToken,
		Prefix: "credsign/enrol-test/", Timeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg.Store, cfg.AdminToken = st, admin
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}
