package service

import (
	"context"
	"os"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/credsign/credsign/internal/vaulttest"
	"github.com/credsign/credsign/secrets/vaultstore"
)

// TestEnrolConcurrentAtLimitVault is TestEnrolConcurrentAtLimit on a real
// Vault, whose KV check-and-set counts the uses, with a token that has only
// deployments/vault/credsign-policy.hcl: groups and enrolment tokens need
// nothing more.
func TestEnrolConcurrentAtLimitVault(t *testing.T) {
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
	s, err := New(Config{Store: st, AdminToken: admin})
	if err != nil {
		t.Fatal(err)
	}
	racingEnrolments(t, s, st)
}
