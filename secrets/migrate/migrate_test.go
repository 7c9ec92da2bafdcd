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

	vaultapi "github.com/hashicorp/vault/api"

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
		if _, err := s.PutDevice(ctx, d, 0); err != nil { // a write apart: of distinct times
			t.Fatal(err)
		}
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
	for _, name := range []string{"device-token-mac", "jwt-signing-keys", "revoked-device-tokens.07", "dpop-nonce-key"} {
		if _, err := s.PutKey(ctx, name, []byte("value of "+name), 0); err != nil {
			t.Fatal(err)
		}
	}
	fillNewer(t, s)
}

// Records of the kinds and fields added since the migration was first
// written, that fillNewer adds.
const (
	newerDevices = 1 // keyed, a rotated secret
	newerGroups  = 1 // requireKey, requireAttestation
	newerTokens  = 3 // a rotated named expiring device token, its successor, a scoped provisioner token
	newerKeys    = 2 // an enrolment token record, the enrolment token written as a key
)

// fillNewer adds to s one record of each kind and field added since the
// migration was first written: a device with a rotated secret, two keys
// and requireKey; a group requiring TPM attestation; a named, expiring
// device token rotated into its successor; a scoped named provisioner
// token; an enrolment token with uses (and one kept the old way, a key).
func fillNewer(t *testing.T, s secrets.Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.PutGroup(ctx, secrets.Group{ID: "tpm", Cloud: "azure", Secret: "tpm-group-key", RequireKey: true, RequireAttestation: "tpm"}, 0); err != nil {
		t.Fatal(err)
	}
	keyAt := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	d := secrets.Device{ID: "keyed", Cloud: "aliyun", Params: map[string]any{"productKey": "pk"}, Secret: "first-secret", Group: "tpm",
		RequireKey: true, Keys: []secrets.DeviceKey{
			{ID: "kid-a", JWK: json.RawMessage(`{"kty":"EC","crv":"P-256","x":"a","y":"b"}`), Name: "boot", Attestation: "tpm", CreatedAt: keyAt},
			{ID: "kid-b", JWK: json.RawMessage(`{"kty":"OKP","crv":"Ed25519","x":"c"}`), CreatedAt: keyAt.Add(time.Hour)},
		}}
	v, err := s.PutDevice(ctx, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.Secret = "second-secret"
	if v, err = s.PutDevice(ctx, d, v.Version); err != nil || v.SecretVersion != 2 || v.PreviousSecret != "first-secret" || v.SecretRotatedAt == nil {
		t.Fatalf("rotated device %+v, %v", v, err)
	}
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	expires, replaced := created.Add(24*time.Hour), created.Add(20*time.Hour)
	for _, tok := range []secrets.Token{
		{ID: "named-old", Hash: hash(1 << 23), Role: secrets.RoleDevice, DeviceID: "keyed", Name: "boot token", CreatedAt: created, ExpiresAt: &expires, LifetimeSeconds: 86400},
		{ID: "named-new", Hash: hash(1 << 24), Role: secrets.RoleDevice, DeviceID: "keyed", Name: "boot token", CreatedAt: replaced, ExpiresAt: ptr(replaced.Add(24 * time.Hour)), LifetimeSeconds: 86400},
		{ID: "scoped", Hash: hash(1 << 25), Role: secrets.RoleProvisioner, Name: "factory line 2", CreatedAt: created,
			Scope: &secrets.Scope{Groups: []string{"g", "tpm"}, Labels: map[string]string{"site": "sz"}}},
	} {
		if err := s.PutToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ReplaceToken(ctx, "named-old", "named-new", replaced); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutEnrolmentToken(ctx, secrets.EnrolmentToken{ID: "e2", Hash: hash(1 << 26), Group: "tpm", Name: "batch 7", MaxUses: 10, Uses: 3, Failures: 1,
		ExpiresAt: created.Add(48 * time.Hour), IDPattern: "^lamp-[0-9]+$", CreatedAt: created, GroupCreatedAt: created}, 0); err != nil {
		t.Fatal(err)
	}
	enc, err := secrets.EncodeEnrolmentToken(secrets.EnrolmentToken{ID: "e1", Hash: hash(1 << 27), Group: "g", MaxUses: 1, ExpiresAt: expires, CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKey(ctx, "enrolment-token.e1", enc, 0); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

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
				n.SecretVersion, n.PreviousSecret, n.SecretRotatedAt = d.SecretVersion, d.PreviousSecret, d.SecretRotatedAt
				for i, k := range n.Keys { // members in one order (Vault sorts them)
					var jwk any
					if err := json.Unmarshal(k.JWK, &jwk); err != nil {
						t.Fatal(err)
					}
					n.Keys[i].JWK, _ = json.Marshal(jwk)
				}
				v = n
				// The device's token listing names the same tokens.
				out["device-tokens/"+id] = listTokens(t, s, secrets.TokenListOptions{Role: secrets.RoleDevice, DeviceID: id})
			case secrets.KindGroup:
				g, err := s.GetGroup(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				n, _ := secrets.NormalizeGroup(g)
				n.CreatedAt, n.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC()
				v = n
				page, err := s.ListEnrolmentTokens(ctx, id, "", 1000)
				if err != nil {
					t.Fatal(err)
				}
				for i := range page.Tokens {
					page.Tokens[i].Version = 0 // each store's own
				}
				b, _ := json.Marshal(page)
				out["enrolment-tokens/"+id] = string(b)
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
	if len(out) > 0 {
		out["provisioner-tokens"] = listTokens(t, s, secrets.TokenListOptions{Role: secrets.RoleProvisioner})
	}
	return out
}

// listTokens is a token listing as text.
func listTokens(t *testing.T, s secrets.Store, opts secrets.TokenListOptions) string {
	t.Helper()
	opts.Limit = 1000
	page, err := s.ListTokens(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(page)
	return string(b)
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
	const devices, groups, tokens, keys = n + newerDevices, 1 + newerGroups, n + 1 + newerTokens, 4 + newerKeys
	wantReport := migrate.Report{
		secrets.KindDevice: {Source: devices, Copied: devices},
		secrets.KindGroup:  {Source: groups, Copied: groups},
		secrets.KindToken:  {Source: tokens, Copied: tokens},
		secrets.KindKey:    {Source: keys, Copied: keys},
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
	if r, err = migrate.Copy(ctx, from, to, migrate.Options{}); err != nil || r[secrets.KindDevice].Same != devices || r[secrets.KindToken].Same != tokens {
		t.Fatalf("second run: %+v, %v", r, err)
	}
	if err := from.RevokeToken(ctx, "t0001", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	// Rotated at the source since: the successor is new, the rotation
	// is marked on the copy of the old one.
	if err := from.PutToken(ctx, secrets.Token{ID: "t0002-next", Hash: hash(1 << 28), Role: secrets.RoleDevice, DeviceID: "d-0002", CreatedAt: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if _, err := from.ReplaceToken(ctx, "t0002", "t0002-next", time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)); err != nil {
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
	if !errors.Is(err, migrate.ErrConflicts) || r[secrets.KindDevice].Conflicts != 1 || r[secrets.KindToken].Updated != 2 || r[secrets.KindToken].Copied != 1 {
		t.Fatalf("run with a conflict: %+v, %v", r, err)
	}
	if got, _ := to.GetDevice(ctx, "d-0003"); got.Secret != "changed at the destination" {
		t.Fatal("a conflicting device was overwritten without force")
	}
	if tok, _ := to.GetToken(ctx, "t0001"); tok.RevokedAt == nil {
		t.Fatal("the revocation was not copied")
	}
	if tok, _ := to.GetToken(ctx, "t0002"); tok.ReplacedBy != "t0002-next" {
		t.Fatal("the rotation was not copied")
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

// TestCopyThereAndBack moves a store holding every kind of record from
// the embedded store to a real Vault and back into a new embedded store:
// after each hop every record is equal field for field, found by its hash,
// and listed under its owner as before.
func TestCopyThereAndBack(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Start(t)
	file, vault, back := fileStore(t), vaultStore(t, srv, "credsign/"), fileStore(t)
	fill(t, file, 20)
	want := dump(t, file)
	for _, hop := range []struct {
		name     string
		from, to secrets.Store
	}{{"file to vault", file, vault}, {"vault to file", vault, back}} {
		if _, err := migrate.Copy(ctx, hop.from, hop.to, migrate.Options{}); err != nil {
			t.Fatalf("%s: %v", hop.name, err)
		}
		if hop.to == vault {
			// The destination was new: its owner index, written with each
			// token, is marked complete, so that its first listing does
			// not walk every token (which took longer than a call's
			// timeout with a few thousand, and failed every time).
			c, err := vaultapi.NewClient(&vaultapi.Config{Address: srv.Addr})
			if err != nil {
				t.Fatal(err)
			}
			c.SetToken(srv.RootToken)
			if m, err := c.KVv2("secret").Get(ctx, "credsign/tokens/owners-indexed"); err != nil || m == nil {
				t.Fatalf("the destination's owner index is not marked complete: %v", err)
			}
		}
		sameDump(t, dump(t, hop.to), want)
		if r, err := migrate.Copy(ctx, hop.from, hop.to, migrate.Options{}); err != nil || r[secrets.KindToken].Same != r[secrets.KindToken].Source {
			t.Fatalf("%s again: %+v, %v", hop.name, r, err)
		}
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
