package service

import (
	"context"
	"fmt"
	"testing"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
)

// newImportService returns a service on a fresh embedded store, written in
// bulk or, through a wrapper that hides the bulk method (as on Vault), one
// device at a time.
func newImportService(t testing.TB, bulk bool) *Service {
	t.Helper()
	fs, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	var st secrets.Store = fs
	if !bulk {
		st = struct{ secrets.Store }{fs}
	}
	s, err := New(Config{Store: st, AdminToken: admin})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func importItems(n int, prefix string) []ImportItem {
	items := make([]ImportItem, n)
	for i := range items {
		items[i] = ImportItem{ID: fmt.Sprintf("%s-%d", prefix, i), Doc: azure("c2VjcmV0LWtleS0xMjM0NTY3ODkw")}
	}
	return items
}

// TestImportTokensWork: on both write paths (the bulk one mints each token
// into its device's write), every imported token gets credentials for its
// device and is bound to it, a repeated create is refused without a token, and an
// upsert mints a token that works too.
func TestImportTokensWork(t *testing.T) {
	ctx := context.Background()
	for _, bulk := range []bool{true, false} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			s := newImportService(t, bulk)
			items := importItems(50, "imp")
			items = append(items, items[7]) // the same ID again: refused
			res := s.ImportDevices(ctx, adminCaller, items, false, true)
			for i, r := range res[:50] {
				if r.Err != nil || r.Token == nil || !r.Created {
					t.Fatalf("item %d: %+v", i, r)
				}
				p, err := s.Authenticate(ctx, "Bearer "+r.Token.Text)
				if err != nil {
					t.Fatalf("item %d: token refused: %v", i, err)
				}
				if _, err := s.Issue(ctx, p, items[i].ID, 0); err != nil {
					t.Fatalf("item %d: issuing with its imported token: %v", i, err)
				}
				if p.DeviceID != items[i].ID {
					t.Fatalf("item %d: token bound to %q", i, p.DeviceID)
				}
				other := Operation{Roles: []string{secrets.RoleDevice}, DeviceID: items[(i+1)%50].ID, Issues: true}
				if err := s.Authorize(p, other); err == nil {
					t.Fatalf("item %d: its token may act on %s", i, other.DeviceID)
				}
			}
			if last := res[50]; last.Err == nil || last.Token != nil {
				t.Fatalf("repeated create: %+v, want a conflict and no token", last)
			}
			up := s.ImportDevices(ctx, adminCaller, items[:3], true, true)
			for i, r := range up {
				if r.Err != nil || r.Created || r.Device.Version != 2 || r.Token == nil {
					t.Fatalf("upsert %d: %+v", i, r)
				}
				p, err := s.Authenticate(ctx, "Bearer "+r.Token.Text)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Issue(ctx, p, items[i].ID, 0); err != nil {
					t.Fatalf("upsert %d: issuing with the new token: %v", i, err)
				}
			}
		})
	}
}

// BenchmarkImport imports batches of 1,000 devices (the API's batch) on
// the embedded store, with and without their tokens: the ratio is what
// minting tokens costs a bulk import.
func BenchmarkImport(b *testing.B) {
	for _, size := range []int{256, 1000, 4000} {
		for _, mint := range []bool{false, true} {
			b.Run(fmt.Sprintf("batch=%d/tokens=%v", size, mint), func(b *testing.B) {
				s := newImportService(b, true)
				ctx := context.Background()
				n := 0
				for b.Loop() {
					items := importItems(size, fmt.Sprint("b", n))
					n++
					for _, r := range s.ImportDevices(ctx, adminCaller, items, false, mint) {
						if r.Err != nil {
							b.Fatal(r.Err)
						}
					}
				}
				b.ReportMetric(float64(n*size)/b.Elapsed().Seconds(), "devices/s")
			})
		}
	}
}
