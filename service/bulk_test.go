package service

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/vaulttest"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/secrets/vaultstore"
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
			res := s.ImportDevices(ctx, adminCaller, items, ImportCreate, true)
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
			up := s.ImportDevices(ctx, adminCaller, items[:3], ImportUpsert, true)
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
					for _, r := range s.ImportDevices(ctx, adminCaller, items, ImportCreate, mint) {
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

// TestImportIntoGroup: an imported device may name a group and leave out
// its secret: it takes the group's cloud and template, and its token gets
// credentials signed with the key derived from the group key. A group that
// does not exist, or one that registers each device with its cloud, is
// refused for its line only.
func TestImportIntoGroup(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Config{Registrar: &standInRegistrar{}})
	putLamps(t, s)
	reg := GroupDocument{Cloud: "aliyun", Secret: "product-secret-0123456789",
		Params:       map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": "{deviceId}"},
		Registration: &secrets.Registration{Kind: RegistrationAliyunDynamic, Params: map[string]string{"productKey": "a1B2c3D4e5F"}}}
	if _, _, err := s.PutGroup(ctx, adminCaller, "registered", reg); err != nil {
		t.Fatal(err)
	}
	items := []ImportItem{
		{ID: "lamp-1", Doc: Document{Group: "lamps"}},
		{ID: "lamp-2", Doc: Document{Group: "nowhere"}},
		{ID: "lamp-3", Doc: Document{Group: "registered"}},
		{ID: "lamp-4", Doc: Document{Group: "lamps", Params: map[string]any{"hubHost": "other.azure-devices.net"}}},
	}
	res := s.ImportDevices(ctx, adminCaller, items, ImportCreate, true)
	for _, i := range []int{1, 2} {
		if fields := InvalidFields(res[i].Err); len(fields) != 1 || fields[0].Field != "group" {
			t.Errorf("%s: %v, want one fault naming group", items[i].ID, res[i].Err)
		}
	}
	for _, i := range []int{0, 3} {
		r := res[i]
		if r.Err != nil || r.Token == nil || r.Device.Group != "lamps" || r.Device.Cloud != "azure" {
			t.Fatalf("%s: %+v", items[i].ID, r)
		}
		p, err := s.Authenticate(ctx, "Bearer "+r.Token.Text)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Issue(ctx, p, items[i].ID, 0)
		if err != nil {
			t.Fatalf("%s: issuing: %v", items[i].ID, err)
		}
		want := map[int]string{0: "lamps.azure-devices.net", 3: "other.azure-devices.net"}[i]
		if c.Host != want || c.ClientID != items[i].ID {
			t.Errorf("%s: host %q client %q, want %q and the device ID (template, then the device's params)", items[i].ID, c.Host, c.ClientID, want)
		}
	}
}

// TestImportResume: in ImportResume, on the embedded store (bulk and one
// device at a time) and on a real Vault, a device that exists as its item
// describes it is kept and given a new token that works (the earlier one
// too), a missing one is created with its token, and one that differs is
// refused, left as it was and given no token.
func TestImportResume(t *testing.T) {
	ctx := context.Background()
	stores := map[string]func(t *testing.T) *Service{
		"file bulk":   func(t *testing.T) *Service { return newImportService(t, true) },
		"file single": func(t *testing.T) *Service { return newImportService(t, false) },
		"vault": func(t *testing.T) *Service {
			srv := vaulttest.Start(t)
			st, err := vaultstore.New(ctx, vaultstore.Config{Address: srv.Addr, Token: srv.RootToken,
				Prefix: "credsign/resume-test/", Timeout: 10 * time.Second}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			s, err := New(Config{Store: st, AdminToken: admin})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			items := importItems(10, "res")
			first := s.ImportDevices(ctx, adminCaller, items[:6], ImportCreate, true) // their tokens "reach nobody"
			changed := items[3]
			changed.Doc = azure("YW5vdGhlci1rZXktMTIzNDU2Nzg5MA==")
			resumed := append([]ImportItem{}, items...)
			resumed[3] = changed
			res := s.ImportDevices(ctx, adminCaller, resumed, ImportResume, true)
			for i, r := range res {
				switch {
				case i == 3:
					var se *Error
					if !errors.As(r.Err, &se) || se.Code != CodeConflict || r.Token != nil {
						t.Errorf("item 3, which differs: %+v", r)
					}
				case r.Err != nil || r.Token == nil || r.Existing != (i < 6) || r.Created != (i >= 6):
					t.Errorf("item %d: %+v", i, r)
				default:
					p, err := s.Authenticate(ctx, "Bearer "+r.Token.Text)
					if err != nil || p.DeviceID != items[i].ID {
						t.Errorf("item %d: new token: %+v, %v", i, p, err)
					}
				}
			}
			if _, err := s.Authenticate(ctx, "Bearer "+first[0].Token.Text); err != nil {
				t.Errorf("the first run's token stopped working: %v", err)
			}
			d, err := s.store.GetDevice(ctx, items[3].ID)
			if err != nil || d.Secret != *items[3].Doc.Secret || d.Version != 1 {
				t.Errorf("the device that differs was changed: %+v, %v", d, err)
			}
			// Without tokens: the devices are counted as existing and
			// none is minted.
			for i, r := range s.ImportDevices(ctx, adminCaller, items, ImportResume, false) {
				if i != 3 && (r.Err != nil || !r.Existing || r.Token != nil) {
					t.Errorf("item %d, again without tokens: %+v", i, r)
				}
			}
		})
	}
}
