package migrate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/vaulttest"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/secrets/migrate"
	"github.com/credsign/credsign/secrets/vaultstore"
)

func fileStore(t *testing.T) secrets.Store {
	t.Helper()
	s, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func vaultStore(t *testing.T, srv *vaulttest.Server, prefix string) secrets.Store {
	t.Helper()
	s, err := vaultstore.New(context.Background(), vaultstore.Config{Address: srv.Addr, Token: srv.RootToken, Prefix: prefix, Timeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func hash(i int) string { return fmt.Sprintf("%064x", i) }

// fill puts n devices (a tenth of them in a group), a group, a token per
// device (every fifth revoked), a provisioner token and some keys in s.
func fill(t *testing.T, s secrets.Store, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.PutGroup(ctx, secrets.Group{ID: "g", Cloud: "azure", Params: map[string]any{"hubHost": "h"}, Secret: "group-key",
		Registration: &secrets.Registration{Kind: "azure-dps", Params: map[string]string{"idScope": "0ne"}}}, 0); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC)
	for i := range n {
		d := secrets.Device{ID: fmt.Sprintf("d-%04d", i), Cloud: "aliyun", Params: map[string]any{"productKey": "pk", "port": 8883, "tls": true},
			Secret: fmt.Sprintf("secret-%d", i), Labels: map[string]string{"i": fmt.Sprint(i)}}
		if i%10 == 0 {
			d.Group, d.Secret = "g", ""
		}
		if _, err := s.PutDevice(ctx, d, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // devices of distinct times
		tok := secrets.Token{ID: fmt.Sprintf("t%04d", i), Hash: hash(i), Role: secrets.RoleDevice, DeviceID: d.ID, CreatedAt: created}
		if i%5 == 0 {
			at := created.Add(time.Hour)
			tok.RevokedAt = &at
		}
		if err := s.PutToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutToken(ctx, secrets.Token{ID: "prov", Hash: hash(1 << 20), Role: secrets.RoleProvisioner, CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"device-token-mac", "jwt-signing-keys", "revoked-device-tokens.07", "enrolment-token.e1"} {
		if _, err := s.PutKey(ctx, name, []byte("value of "+name), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// dump reads every record of s as a comparable text, versions (which
// each store sets itself) left out and times in.
func dump(t *testing.T, s secrets.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	enum := s.(secrets.Enumerator)
	for _, kind := range secrets.Kinds {
		ids, err := enum.IDs(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			var v any
			switch kind {
			case secrets.KindDevice:
				d, err := s.GetDevice(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				n, _ := secrets.NormalizeDevice(d)
				n.CreatedAt, n.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
				v = n
			case secrets.KindGroup:
				g, err := s.GetGroup(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				n, _ := secrets.NormalizeGroup(g)
				n.CreatedAt, n.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC()
				v = n
			case secrets.KindToken:
				tok, err := s.GetToken(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				byHash, err := s.TokenByHash(ctx, tok.Hash)
				if err != nil || byHash.ID != id {
					t.Fatalf("token %s not found by its hash: %v", id, err)
				}
				v = tok
			case secrets.KindKey:
				b, _, err := s.GetKey(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				v = string(b)
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out[string(kind)+"/"+id] = string(b)
		}
	}
	return out
}

// sameDump fails the test with the first few records that differ.
func sameDump(t *testing.T, got, want map[string]string) {
	t.Helper()
	bad := 0
	for k, w := range want {
		if got[k] != w && bad < 3 {
			bad++
			t.Errorf("%s at the destination:\n%s\nwant\n%s", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d records at the destination, want %d", len(got), len(want))
	}
	if t.Failed() {
		t.FailNow()
	}
}

func TestCopy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to func(t *testing.T) secrets.Store
	}{
		{"file to file", fileStore, fileStore},
		{"file to vault", fileStore, func(t *testing.T) secrets.Store { return vaultStore(t, vaulttest.Start(t), "credsign/") }},
		{"vault to file", func(t *testing.T) secrets.Store { return vaultStore(t, vaulttest.Start(t), "credsign/") }, fileStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testCopy(t, tc.from(t), tc.to(t))
		})
	}
}

func testCopy(t *testing.T, from, to secrets.Store) {
	ctx := context.Background()
	const n = 60
	fill(t, from, n)
	want := dump(t, from)

	// A dry run counts and writes nothing.
	r, err := migrate.Copy(ctx, from, to, migrate.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	wantReport := migrate.Report{
		secrets.KindDevice: {Source: n, Copied: n},
		secrets.KindGroup:  {Source: 1, Copied: 1},
		secrets.KindToken:  {Source: n + 1, Copied: n + 1},
		secrets.KindKey:    {Source: 4, Copied: 4},
	}
	if !reflect.DeepEqual(r, wantReport) {
		t.Fatalf("dry run report %+v, want %+v", r, wantReport)
	}
	if got := dump(t, to); len(got) != 0 {
		t.Fatalf("the dry run wrote %d records", len(got))
	}

	// The copy, in small batches.
	if r, err = migrate.Copy(ctx, from, to, migrate.Options{Batch: 7, Parallel: 4}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, wantReport) {
		t.Fatalf("report %+v, want %+v", r, wantReport)
	}
	sameDump(t, dump(t, to), want)

	// Again: everything is the same. Then a token revoked at the source
	// since, a device changed at the destination (a conflict, left alone
	// unless forced), and a token of the same ID and another hash (never
	// overwritten).
	if r, err = migrate.Copy(ctx, from, to, migrate.Options{}); err != nil || r[secrets.KindDevice].Same != n || r[secrets.KindToken].Same != n+1 {
		t.Fatalf("second run: %+v, %v", r, err)
	}
	if err := from.RevokeToken(ctx, "t0001", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	d, err := to.GetDevice(ctx, "d-0003")
	if err != nil {
		t.Fatal(err)
	}
	d.Secret = "changed at the destination"
	if _, err := to.PutDevice(ctx, d, d.Version); err != nil {
		t.Fatal(err)
	}
	want = dump(t, from)
	r, err = migrate.Copy(ctx, from, to, migrate.Options{})
	if !errors.Is(err, migrate.ErrConflicts) || r[secrets.KindDevice].Conflicts != 1 || r[secrets.KindToken].Updated != 1 {
		t.Fatalf("run with a conflict: %+v, %v", r, err)
	}
	if got, _ := to.GetDevice(ctx, "d-0003"); got.Secret != "changed at the destination" {
		t.Fatal("a conflicting device was overwritten without force")
	}
	if tok, _ := to.GetToken(ctx, "t0001"); tok.RevokedAt == nil {
		t.Fatal("the revocation was not copied")
	}
	if r, err = migrate.Copy(ctx, from, to, migrate.Options{Force: true}); err != nil || r[secrets.KindDevice].Updated != 1 {
		t.Fatalf("forced run: %+v, %v", r, err)
	}
	sameDump(t, dump(t, to), want)
	if err := from.PutToken(ctx, secrets.Token{ID: "clash", Hash: hash(1 << 21), Role: secrets.RoleProvisioner, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := to.PutToken(ctx, secrets.Token{ID: "clash", Hash: hash(1 << 22), Role: secrets.RoleProvisioner, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r, err = migrate.Copy(ctx, from, to, migrate.Options{Force: true})
	if !errors.Is(err, migrate.ErrConflicts) || r[secrets.KindToken].Conflicts != 1 || !strings.Contains(err.Error(), "1 records differ") {
		t.Fatalf("token clash: %+v, %v", r, err)
	}
}

// TestCopyNeedsEnumerator: a source that cannot list its records, or a
// destination that cannot keep their times, is refused before anything is
// written.
func TestCopyNeedsEnumerator(t *testing.T) {
	from := struct{ secrets.Store }{fileStore(t)}
	if _, err := migrate.Copy(context.Background(), from, fileStore(t), migrate.Options{}); err == nil {
		t.Fatal("no error")
	}
	to := struct{ secrets.Store }{fileStore(t)}
	if _, err := migrate.Copy(context.Background(), fileStore(t), to, migrate.Options{}); err == nil {
		t.Fatal("no error for a destination that cannot keep times")
	}
}
