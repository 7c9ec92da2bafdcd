package filestore

import (
	"context"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/storetest"
)

// TestTokenOwnersMigrated: a data file written before the owner index
// existed gets it at open, filled from its token records, and lists them.
func TestTokenOwnersMigrated(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tk := range []secrets.Token{
		{ID: "t1", Hash: storetest.Hash("1"), Role: secrets.RoleDevice, DeviceID: "lamp", CreatedAt: at},
		{ID: "t2", Hash: storetest.Hash("2"), Role: secrets.RoleProvisioner, CreatedAt: at},
		{ID: "t3", Hash: storetest.Hash("3"), Role: secrets.RoleDevice, DeviceID: "lamp", CreatedAt: at},
	} {
		if err := s.PutToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	editDB(t, dir, func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketTokenOwners) }) // as written before
	s = open(t, Config{Dir: dir})
	p, err := s.ListTokens(ctx, secrets.TokenListOptions{Role: secrets.RoleDevice, DeviceID: "lamp"})
	if err != nil || len(p.Tokens) != 2 || p.Tokens[0].ID != "t1" || p.Tokens[1].ID != "t3" || p.Tokens[0].Name != "" {
		t.Fatalf("after the migration: %+v, %v", p, err)
	}
	if p, err := s.ListTokens(ctx, secrets.TokenListOptions{Role: secrets.RoleProvisioner}); err != nil || len(p.Tokens) != 1 {
		t.Fatalf("provisioner tokens after the migration: %+v, %v", p, err)
	}
}
