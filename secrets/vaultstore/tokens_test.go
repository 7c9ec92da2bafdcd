package vaultstore

import (
	"context"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/vaulttest"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/storetest"
)

// TestTokenOwnersIndexed: tokens written before the owner index existed
// (no tokens/by-device or tokens/provisioners entries, no marker) are
// indexed by the first listing of a process, and listed.
func TestTokenOwnersIndexed(t *testing.T) {
	srv := vaulttest.Start(t)
	cfg := baseConfig(srv, policyToken(t, srv, "1h"))
	s := newStore(t, cfg)
	ctx := context.Background()
	// A store created empty is marked indexed at once: every token
	// written since is indexed as it is written.
	if e, err := s.read(ctx, ownersIndexedRel); err != nil || e.data == nil {
		t.Fatalf("a new store is not marked indexed: %v", err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	toks := []secrets.Token{
		{ID: "t1", Hash: storetest.Hash("1"), Role: secrets.RoleDevice, DeviceID: "lamp", CreatedAt: at},
		{ID: "t2", Hash: storetest.Hash("2"), Role: secrets.RoleProvisioner, CreatedAt: at},
		{ID: "t3", Hash: storetest.Hash("3"), Role: secrets.RoleDevice, DeviceID: "lamp", CreatedAt: at},
	}
	for _, tk := range toks {
		if err := s.PutToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
		// The layout before the index: the ID entry and the record only.
		if err := s.destroy(ctx, tokenOwnerFolder(tk.Role, tk.DeviceID)+tk.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Nor was there a marker.
	if err := s.destroy(ctx, ownersIndexedRel); err != nil {
		t.Fatal(err)
	}
	fresh := newStore(t, cfg) // another process: it has not indexed yet
	if e, err := fresh.read(ctx, ownersIndexedRel); err != nil || e.data != nil {
		t.Fatalf("a store with tokens was marked at open: %v", err)
	}
	p, err := fresh.ListTokens(ctx, secrets.TokenListOptions{Role: secrets.RoleDevice, DeviceID: "lamp"})
	if err != nil || len(p.Tokens) != 2 || p.Tokens[0].ID != "t1" || p.Tokens[1].ID != "t3" {
		t.Fatalf("after indexing: %+v, %v", p, err)
	}
	if p, err := fresh.ListTokens(ctx, secrets.TokenListOptions{Role: secrets.RoleProvisioner}); err != nil || len(p.Tokens) != 1 {
		t.Fatalf("provisioner tokens after indexing: %+v, %v", p, err)
	}
	if e, err := fresh.read(ctx, ownersIndexedRel); err != nil || e.data == nil {
		t.Fatalf("no marker after indexing: %v", err)
	}
}
