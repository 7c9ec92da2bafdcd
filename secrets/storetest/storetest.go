// Package storetest is the conformance suite every secrets.Store passes.
// A backend's tests call Run with a constructor that returns an empty,
// isolated store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) secrets.Store { return open(t) })
//	}
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
)

// Run runs the conformance suite. newStore is called once per subtest and
// must return an empty store that no other subtest shares; Run closes it
// (twice, to check Close is idempotent) when the subtest ends.
func Run(t *testing.T, newStore func(t *testing.T) secrets.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s secrets.Store)
	}{
		{"DeviceRoundTrip", testDeviceRoundTrip},
		{"CompareAndSet", testCompareAndSet},
		{"ConcurrentCompareAndSet", testConcurrentCompareAndSet},
		{"NotFound", testNotFound},
		{"InvalidID", testInvalidID},
		{"Delete", testDelete},
		{"ReturnedCopies", testReturnedCopies},
		{"ListPagination", testListPagination},
		{"ListConcurrentWriters", testListConcurrentWriters},
		{"Tokens", testTokens},
		{"TokenScope", testTokenScope},
		{"TokenRecords", testTokenRecords},
		{"ListTokens", testListTokens},
		{"EnrolmentTokens", testEnrolmentTokens},
		{"Ping", testPing},
		{"Keys", testKeys},
		{"Groups", testGroups},
		{"DeviceGroup", testDeviceGroup},
		{"SecretVersions", testSecretVersions},
		{"ListScan", testListScan},
		{"DeviceKeys", testDeviceKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if err := s.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// NewSecret returns a random secret that is easy to search for in files and
// error strings.
func NewSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "s3cret-" + hex.EncodeToString(b)
}

// Hash returns the lowercase hex SHA-256 of text, the form of Token.Hash.
func Hash(text string) string {
	h := sha256.Sum256([]byte(text))
	return hex.EncodeToString(h[:])
}

func device(id, cloud string) secrets.Device {
	return secrets.Device{
		ID:     id,
		Cloud:  cloud,
		Params: map[string]any{"productKey": "pk", "deviceName": id},
		Secret: NewSecret(),
	}
}

// noSecret fails the test if err's text contains secret.
func noSecret(t *testing.T, err error, secret string) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Fatalf("error text contains the secret: %v", err)
	}
}

func mustPut(t *testing.T, s secrets.Store, d secrets.Device, ifVersion int64) secrets.Device {
	t.Helper()
	got, err := s.PutDevice(ctx(t), d, ifVersion)
	if err != nil {
		noSecret(t, err, d.Secret)
		t.Fatalf("PutDevice(%q, %d): %v", d.ID, ifVersion, err)
	}
	return got
}

// sameDocument compares the fields a caller writes.
func sameDocument(t *testing.T, got, want secrets.Device) {
	t.Helper()
	if got.ID != want.ID || got.Cloud != want.Cloud || got.Secret != want.Secret ||
		!reflect.DeepEqual(got.Params, want.Params) || !reflect.DeepEqual(got.Labels, want.Labels) {
		got.Secret, want.Secret = "<redacted>", "<redacted>"
		t.Fatalf("device mismatch:\n got %+v\nwant %+v", got, want)
	}
}

func testDeviceRoundTrip(t *testing.T, s secrets.Store) {
	tests := []struct {
		name string
		in   secrets.Device
		want secrets.Device // the same document as read back
	}{
		{
			name: "aliyun with numbers and labels",
			in: secrets.Device{ID: "lamp-7", Cloud: "aliyun",
				Params: map[string]any{"productKey": "a1B2c3", "deviceName": "lamp-7", "secureMode": 3, "port": 1883},
				Secret: "s3cret-aliyun", Labels: map[string]string{"site": "sz"}},
			want: secrets.Device{ID: "lamp-7", Cloud: "aliyun",
				Params: map[string]any{"productKey": "a1B2c3", "deviceName": "lamp-7", "secureMode": float64(3), "port": float64(1883)},
				Secret: "s3cret-aliyun", Labels: map[string]string{"site": "sz"}},
		},
		{
			name: "huawei with a boolean",
			in: secrets.Device{ID: "dev_01.a:b", Cloud: "huawei",
				Params: map[string]any{"deviceId": "d1", "checkTimestamp": false, "tls": true}, Secret: "s3cret-huawei"},
			want: secrets.Device{ID: "dev_01.a:b", Cloud: "huawei",
				Params: map[string]any{"deviceId": "d1", "checkTimestamp": false, "tls": true}, Secret: "s3cret-huawei"},
		},
		{
			name: "no params, empty labels, unicode secret",
			in:   secrets.Device{ID: "Z", Cloud: "azure", Secret: "ключ/🔑=", Labels: map[string]string{}},
			want: secrets.Device{ID: "Z", Cloud: "azure", Secret: "ключ/🔑="},
		},
		{
			name: "longest ID",
			in:   secrets.Device{ID: strings.Repeat("a", 128), Cloud: "tencent", Params: map[string]any{"productId": "P"}, Secret: "x"},
			want: secrets.Device{ID: strings.Repeat("a", 128), Cloud: "tencent", Params: map[string]any{"productId": "P"}, Secret: "x"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().Add(-time.Second)
			put := mustPut(t, s, tc.in, 0)
			sameDocument(t, put, tc.want)
			if put.Version != 1 {
				t.Errorf("Version = %d, want 1", put.Version)
			}
			if put.CreatedAt.Before(before) || !put.UpdatedAt.Equal(put.CreatedAt) {
				t.Errorf("CreatedAt %v UpdatedAt %v, want equal and recent", put.CreatedAt, put.UpdatedAt)
			}
			got, err := s.GetDevice(ctx(t), tc.in.ID)
			if err != nil {
				t.Fatalf("GetDevice: %v", err)
			}
			sameDocument(t, got, tc.want)
			if got.Version != put.Version || !got.CreatedAt.Equal(put.CreatedAt) || !got.UpdatedAt.Equal(put.UpdatedAt) {
				t.Errorf("GetDevice bookkeeping %d %v %v, PutDevice returned %d %v %v",
					got.Version, got.CreatedAt, got.UpdatedAt, put.Version, put.CreatedAt, put.UpdatedAt)
			}
		})
	}
}

func testCompareAndSet(t *testing.T, s secrets.Store) {
	steps := []struct {
		name        string
		id          string
		ifVersion   int64
		wantErr     error
		wantVersion int64
	}{
		{"create-only on a new device", "cas-1", 0, nil, 1},
		{"create-only on an existing device", "cas-1", 0, secrets.ErrConflict, 1},
		{"matching version", "cas-1", 1, nil, 2},
		{"stale version", "cas-1", 1, secrets.ErrConflict, 2},
		{"future version", "cas-1", 7, secrets.ErrConflict, 2},
		{"unconditional", "cas-1", -1, nil, 3},
		{"matching version again", "cas-1", 3, nil, 4},
		{"version on a missing device", "cas-2", 1, secrets.ErrConflict, 0},
		{"unconditional create", "cas-2", -1, nil, 1},
	}
	var created time.Time
	for _, st := range steps {
		d := device(st.id, "aliyun")
		got, err := s.PutDevice(ctx(t), d, st.ifVersion)
		noSecret(t, err, d.Secret)
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
			t.Fatalf("%s: PutDevice(%q, %d) error = %v, want %v", st.name, st.id, st.ifVersion, err, st.wantErr)
		}
		cur, getErr := s.GetDevice(ctx(t), st.id)
		if st.wantVersion == 0 {
			if !errors.Is(getErr, secrets.ErrNotFound) {
				t.Fatalf("%s: GetDevice error = %v, want ErrNotFound", st.name, getErr)
			}
			continue
		}
		if getErr != nil {
			t.Fatalf("%s: GetDevice: %v", st.name, getErr)
		}
		if cur.Version != st.wantVersion {
			t.Fatalf("%s: stored version %d, want %d", st.name, cur.Version, st.wantVersion)
		}
		if err != nil {
			continue
		}
		if got.Version != st.wantVersion || got.Secret != d.Secret || cur.Secret != d.Secret {
			t.Fatalf("%s: returned version %d (want %d) or secret not written", st.name, got.Version, st.wantVersion)
		}
		if st.id == "cas-1" {
			if got.Version == 1 {
				created = got.CreatedAt
			}
			if !got.CreatedAt.Equal(created) || got.UpdatedAt.Before(got.CreatedAt) {
				t.Fatalf("%s: CreatedAt %v (want %v), UpdatedAt %v", st.name, got.CreatedAt, created, got.UpdatedAt)
			}
		}
	}
}

func testConcurrentCompareAndSet(t *testing.T, s secrets.Store) {
	cur := mustPut(t, s, device("race", "aliyun"), 0)
	const n = 6
	wins, conflicts := race(t, "PutDevice", n, func(int) error {
		_, err := s.PutDevice(ctx(t), device("race", "tencent"), cur.Version)
		return err
	})
	if wins != 1 || conflicts != n-1 {
		t.Fatalf("%d writers with the same version: %d succeeded, %d conflicted; want 1 and %d", n, wins, conflicts, n-1)
	}
	got, err := s.GetDevice(ctx(t), "race")
	if err != nil || got.Version != cur.Version+1 {
		t.Fatalf("GetDevice = version %d, %v; want %d", got.Version, err, cur.Version+1)
	}
}

func testNotFound(t *testing.T, s secrets.Store) {
	mustPut(t, s, device("present", "aliyun"), 0)
	if err := s.PutToken(ctx(t), secrets.Token{ID: "tok-present", Hash: Hash("present"), Role: secrets.RoleProvisioner, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
	}{
		{"GetDevice", func() error { _, err := s.GetDevice(ctx(t), "absent"); return err }},
		{"DeleteDevice", func() error { return s.DeleteDevice(ctx(t), "absent") }},
		{"GetToken", func() error { _, err := s.GetToken(ctx(t), "absent"); return err }},
		{"TokenByHash", func() error { _, err := s.TokenByHash(ctx(t), Hash("absent")); return err }},
		{"RevokeToken", func() error { return s.RevokeToken(ctx(t), "absent", time.Now()) }},
		{"GetDevice named like a token", func() error { _, err := s.GetDevice(ctx(t), "tok-present"); return err }},
		{"GetToken named like a device", func() error { _, err := s.GetToken(ctx(t), "present"); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, secrets.ErrNotFound) {
				t.Fatalf("error = %v, want ErrNotFound", err)
			}
		})
	}
}

func testInvalidID(t *testing.T, s secrets.Store) {
	secret := NewSecret()
	ids := []string{"", ".", "..", "../etc", "a/b", "-lead", ".hidden", "sp ace", "tab\t", "ünï", "a%2Fb", "a?b", "a#b", strings.Repeat("a", 129)}
	for _, id := range ids {
		t.Run(fmt.Sprintf("%.20q", id), func(t *testing.T) {
			ops := map[string]func() error{
				"PutDevice": func() error {
					_, err := s.PutDevice(ctx(t), secrets.Device{ID: id, Cloud: "aliyun", Secret: secret}, -1)
					return err
				},
				"GetDevice":    func() error { _, err := s.GetDevice(ctx(t), id); return err },
				"DeleteDevice": func() error { return s.DeleteDevice(ctx(t), id) },
				"PutToken": func() error {
					return s.PutToken(ctx(t), secrets.Token{ID: id, Hash: Hash(id), Role: secrets.RoleDevice})
				},
				"GetToken":    func() error { _, err := s.GetToken(ctx(t), id); return err },
				"RevokeToken": func() error { return s.RevokeToken(ctx(t), id, time.Now()) },
			}
			for name, op := range ops {
				err := op()
				if !errors.Is(err, secrets.ErrInvalid) {
					t.Errorf("%s: error = %v, want ErrInvalid", name, err)
				}
				for _, sentinel := range []error{secrets.ErrNotFound, secrets.ErrConflict, secrets.ErrUnavailable} {
					if errors.Is(err, sentinel) {
						t.Errorf("%s: error %v is %v", name, err, sentinel)
					}
				}
				noSecret(t, err, secret)
			}
		})
	}
	for _, h := range []string{"", "ABC", strings.Repeat("A", 64), strings.Repeat("g", 64), strings.Repeat("a", 63), "../" + strings.Repeat("a", 61)} {
		if _, err := s.TokenByHash(ctx(t), h); !errors.Is(err, secrets.ErrInvalid) {
			t.Errorf("TokenByHash(%q) error = %v, want ErrInvalid", h, err)
		}
		if err := s.PutToken(ctx(t), secrets.Token{ID: "tok", Hash: h, Role: secrets.RoleDevice}); !errors.Is(err, secrets.ErrInvalid) {
			t.Errorf("PutToken with hash %q: error = %v, want ErrInvalid", h, err)
		}
	}
	page, err := s.ListDevices(ctx(t), secrets.ListOptions{})
	if err != nil || len(page.Devices) != 0 {
		t.Fatalf("after invalid writes ListDevices = %d devices, %v; want none", len(page.Devices), err)
	}
}

func testDelete(t *testing.T, s secrets.Store) {
	d := device("doomed", "aliyun")
	mustPut(t, s, d, 0)
	d.Secret = NewSecret()
	mustPut(t, s, d, 1) // a second version, which must go too
	mustPut(t, s, device("kept", "aliyun"), 0)

	if err := s.DeleteDevice(ctx(t), "doomed"); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	if _, err := s.GetDevice(ctx(t), "doomed"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("GetDevice after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteDevice(ctx(t), "doomed"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("second DeleteDevice: %v, want ErrNotFound", err)
	}
	page, err := s.ListDevices(ctx(t), secrets.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ids := pageIDs(page); !slices.Equal(ids, []string{"kept"}) {
		t.Fatalf("ListDevices after delete = %v, want [kept]", ids)
	}
	// Every version is gone: the device starts again at version 1 and a
	// create-only write succeeds.
	again := mustPut(t, s, device("doomed", "huawei"), 0)
	if again.Version != 1 {
		t.Fatalf("re-created device has version %d, want 1", again.Version)
	}
}

func testReturnedCopies(t *testing.T, s secrets.Store) {
	d := device("copy", "aliyun")
	d.Labels = map[string]string{"site": "sz"}
	put := mustPut(t, s, d, 0)
	d.Params["productKey"] = "changed-input"
	d.Labels["site"] = "changed-input"
	put.Params["productKey"] = "changed-output"
	got, err := s.GetDevice(ctx(t), "copy")
	if err != nil {
		t.Fatal(err)
	}
	got.Params["deviceName"] = "changed-get"
	got.Labels["site"] = "changed-get"
	again, err := s.GetDevice(ctx(t), "copy")
	if err != nil {
		t.Fatal(err)
	}
	if again.Params["productKey"] != "pk" || again.Params["deviceName"] != "copy" || again.Labels["site"] != "sz" {
		t.Fatalf("stored record changed through a caller's map: %v %v", again.Params, again.Labels)
	}
}

func pageIDs(p secrets.Page) []string {
	ids := make([]string, len(p.Devices))
	for i, d := range p.Devices {
		ids[i] = d.ID
	}
	return ids
}

// listAll pages through the listing and checks each page's invariants.
func listAll(t *testing.T, s secrets.Store, cloud string, limit int) []secrets.Device {
	t.Helper()
	var all []secrets.Device
	opts := secrets.ListOptions{Cloud: cloud, Limit: limit}
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("listing does not end")
		}
		page, err := s.ListDevices(ctx(t), opts)
		if err != nil {
			t.Fatalf("ListDevices(%+v): %v", opts, err)
		}
		if limit > 0 && len(page.Devices) > limit {
			t.Fatalf("page of %d devices, limit %d", len(page.Devices), limit)
		}
		for _, d := range page.Devices {
			if cloud != "" && d.Cloud != cloud {
				t.Fatalf("device %q of cloud %q in a listing of %q", d.ID, d.Cloud, cloud)
			}
			if d.ID <= opts.After {
				t.Fatalf("device %q not after cursor %q", d.ID, opts.After)
			}
		}
		all = append(all, page.Devices...)
		if page.Next == "" {
			return all
		}
		if len(page.Devices) == 0 || page.Next != page.Devices[len(page.Devices)-1].ID {
			t.Fatalf("Next = %q after page %v", page.Next, pageIDs(page))
		}
		opts.After = page.Next
	}
}

func testListPagination(t *testing.T, s secrets.Store) {
	if page, err := s.ListDevices(ctx(t), secrets.ListOptions{}); err != nil || len(page.Devices) != 0 || page.Next != "" {
		t.Fatalf("empty store: ListDevices = %+v, %v", page, err)
	}
	clouds := []string{"aliyun", "tencent", "huawei"}
	var want = map[string][]string{}
	for i := range 10 {
		id := fmt.Sprintf("dev-%02d", 9-i) // written out of order
		cloud := clouds[i%len(clouds)]
		mustPut(t, s, device(id, cloud), 0)
		want[cloud] = append(want[cloud], id)
		want[""] = append(want[""], id)
	}
	for _, ids := range want {
		slices.Sort(ids)
	}
	tests := []struct {
		cloud string
		limit int
	}{
		{"", 0}, {"", 1}, {"", 3}, {"", 10}, {"", 11},
		{"aliyun", 0}, {"aliyun", 2}, {"aliyun", 4}, {"tencent", 1}, {"huawei", 3}, {"azure", 2},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("cloud=%s,limit=%d", tc.cloud, tc.limit), func(t *testing.T) {
			got := listAll(t, s, tc.cloud, tc.limit)
			ids := make([]string, len(got))
			for i, d := range got {
				ids[i] = d.ID
			}
			if !slices.Equal(ids, want[tc.cloud]) {
				t.Fatalf("listing = %v, want %v", ids, want[tc.cloud])
			}
			for _, d := range got {
				if d.Version != 1 || d.Params["deviceName"] != d.ID {
					t.Fatalf("listed device %+v incomplete", d.ID)
				}
			}
		})
	}
	t.Run("exact page has no next", func(t *testing.T) {
		page, err := s.ListDevices(ctx(t), secrets.ListOptions{Limit: 10})
		if err != nil || len(page.Devices) != 10 || page.Next != "" {
			t.Fatalf("ListDevices(limit 10 of 10) = %d devices, next %q, %v", len(page.Devices), page.Next, err)
		}
	})
	t.Run("cursor between IDs", func(t *testing.T) {
		page, err := s.ListDevices(ctx(t), secrets.ListOptions{After: "dev-04x", Limit: 2})
		if err != nil || !slices.Equal(pageIDs(page), []string{"dev-05", "dev-06"}) || page.Next != "dev-06" {
			t.Fatalf("ListDevices(after dev-04x) = %v next %q, %v", pageIDs(page), page.Next, err)
		}
	})
}

func testListConcurrentWriters(t *testing.T, s secrets.Store) {
	const stable = 24
	var ids []string
	for i := range stable {
		id := fmt.Sprintf("stable-%02d", i)
		ids = append(ids, id)
		mustPut(t, s, device(id, []string{"aliyun", "tencent"}[i%2]), 0)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wctx := ctx(t)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Rewrite a stable device (same cloud), create a transient one
				// that sorts among them, and delete it again.
				id := ids[(i*3+w)%stable]
				if _, err := s.PutDevice(wctx, device(id, []string{"aliyun", "tencent"}[(i*3+w)%stable%2]), -1); err != nil {
					t.Errorf("writer PutDevice: %v", err)
					return
				}
				tmp := fmt.Sprintf("stable-%02d-tmp-%d", (i+w)%stable, w)
				if _, err := s.PutDevice(wctx, device(tmp, "huawei"), -1); err != nil {
					t.Errorf("writer PutDevice: %v", err)
					return
				}
				if err := s.DeleteDevice(wctx, tmp); err != nil {
					t.Errorf("writer DeleteDevice: %v", err)
					return
				}
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for round := range 3 {
		for _, cloud := range []string{"", "aliyun", "tencent"} {
			got := listAll(t, s, cloud, 5)
			seen := map[string]bool{}
			prev := ""
			for _, d := range got {
				if d.ID <= prev {
					t.Fatalf("round %d cloud %q: %q listed after %q", round, cloud, d.ID, prev)
				}
				prev = d.ID
				seen[d.ID] = true
			}
			for i, id := range ids {
				if (cloud == "" || cloud == []string{"aliyun", "tencent"}[i%2]) && !seen[id] {
					t.Fatalf("round %d cloud %q: stable device %q missing", round, cloud, id)
				}
			}
		}
	}
}

// testTokenScope: a provisioner token's scope is kept as given, read back
// by hash and by ID, before and after a revocation; a token without one
// reads back without one.
func testTokenScope(t *testing.T, s secrets.Store) {
	created := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	scoped := secrets.Token{ID: "tok-scoped", Hash: Hash("csp_scoped"), Role: secrets.RoleProvisioner, CreatedAt: created,
		Scope: &secrets.Scope{Groups: []string{"line-2", "line-1"}, Labels: map[string]string{"site": "sz", "team/a": ""}}}
	plain := secrets.Token{ID: "tok-plain", Hash: Hash("csp_plain"), Role: secrets.RoleProvisioner, CreatedAt: created}
	for _, tok := range []secrets.Token{scoped, plain} {
		if err := s.PutToken(ctx(t), tok); err != nil {
			t.Fatalf("PutToken(%q): %v", tok.ID, err)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, want := range []secrets.Token{scoped, plain} {
			byHash, err := s.TokenByHash(ctx(t), want.Hash)
			if err != nil {
				t.Fatalf("%s: TokenByHash(%s): %v", when, want.ID, err)
			}
			byID, err := s.GetToken(ctx(t), want.ID)
			if err != nil {
				t.Fatalf("%s: GetToken(%s): %v", when, want.ID, err)
			}
			for _, got := range []secrets.Token{byHash, byID} {
				if !reflect.DeepEqual(got.Scope, want.Scope) {
					t.Fatalf("%s: token %s has scope %+v, want %+v", when, want.ID, got.Scope, want.Scope)
				}
			}
		}
	}
	check("stored")
	if err := s.RevokeToken(ctx(t), scoped.ID, created.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	check("revoked")
}

func testTokens(t *testing.T, s secrets.Store) {
	created := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	prov := secrets.Token{ID: "tok-prov", Hash: Hash("csg_prov"), Role: secrets.RoleProvisioner, CreatedAt: created}
	dev := secrets.Token{ID: "tok-dev", Hash: Hash("csg_dev"), Role: secrets.RoleDevice, DeviceID: "lamp-7", CreatedAt: created}
	for _, tok := range []secrets.Token{prov, dev} {
		if err := s.PutToken(ctx(t), tok); err != nil {
			t.Fatalf("PutToken(%q): %v", tok.ID, err)
		}
	}
	conflicts := []struct {
		name string
		tok  secrets.Token
	}{
		{"same ID", secrets.Token{ID: "tok-prov", Hash: Hash("other"), Role: secrets.RoleProvisioner, CreatedAt: created}},
		{"same hash", secrets.Token{ID: "tok-other", Hash: Hash("csg_dev"), Role: secrets.RoleDevice, CreatedAt: created}},
	}
	for _, tc := range conflicts {
		if err := s.PutToken(ctx(t), tc.tok); !errors.Is(err, secrets.ErrConflict) {
			t.Errorf("PutToken with %s: error = %v, want ErrConflict", tc.name, err)
		}
	}
	if _, err := s.GetToken(ctx(t), "tok-other"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("conflicting PutToken left a record: GetToken = %v", err)
	}
	for _, want := range []secrets.Token{prov, dev} {
		byHash, err := s.TokenByHash(ctx(t), want.Hash)
		if err != nil {
			t.Fatalf("TokenByHash(%s): %v", want.ID, err)
		}
		byID, err := s.GetToken(ctx(t), want.ID)
		if err != nil {
			t.Fatalf("GetToken(%s): %v", want.ID, err)
		}
		for _, got := range []secrets.Token{byHash, byID} {
			if got.ID != want.ID || got.Hash != want.Hash || got.Role != want.Role || got.DeviceID != want.DeviceID ||
				!got.CreatedAt.Equal(want.CreatedAt) || got.RevokedAt != nil {
				t.Fatalf("token = %+v, want %+v", got, want)
			}
		}
	}
	revoked := created.Add(time.Hour)
	if err := s.RevokeToken(ctx(t), "tok-dev", revoked); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if err := s.RevokeToken(ctx(t), "tok-dev", revoked.Add(time.Hour)); err != nil {
		t.Fatalf("second RevokeToken: %v", err)
	}
	for name, get := range map[string]func() (secrets.Token, error){
		"TokenByHash": func() (secrets.Token, error) { return s.TokenByHash(ctx(t), dev.Hash) },
		"GetToken":    func() (secrets.Token, error) { return s.GetToken(ctx(t), dev.ID) },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s after revoke: %v", name, err)
		}
		if got.RevokedAt == nil || !got.RevokedAt.Equal(revoked) {
			t.Fatalf("%s after revoke: RevokedAt = %v, want %v (the first revocation)", name, got.RevokedAt, revoked)
		}
	}
	if got, err := s.GetToken(ctx(t), "tok-prov"); err != nil || got.RevokedAt != nil {
		t.Fatalf("revoking one token touched another: %+v, %v", got, err)
	}
}

func testPing(t *testing.T, s secrets.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// testKeys checks the KeyStore: create once, compare-and-set updates, one
// winner among concurrent creators, binary values intact, bad names refused.
func testKeys(t *testing.T, s secrets.Store) {
	c := ctx(t)
	if _, _, err := s.GetKey(c, "mac"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("GetKey of a missing key: %v, want ErrNotFound", err)
	}
	v1 := []byte{0, 1, 2, 0xff, 'k', 0}
	ver, err := s.PutKey(c, "mac", v1, 0)
	if err != nil || ver < 1 {
		t.Fatalf("PutKey create: version %d, %v", ver, err)
	}
	got, gv, err := s.GetKey(c, "mac")
	if err != nil || !bytes.Equal(got, v1) || gv != ver {
		t.Fatalf("GetKey: %x v%d %v, want %x v%d", got, gv, err, v1, ver)
	}
	if _, err := s.PutKey(c, "mac", []byte("other"), 0); !errors.Is(err, secrets.ErrConflict) {
		t.Errorf("second create: %v, want ErrConflict", err)
	}
	if _, err := s.PutKey(c, "mac", []byte("other"), ver+7); !errors.Is(err, secrets.ErrConflict) {
		t.Errorf("update from a wrong version: %v, want ErrConflict", err)
	}
	ver2, err := s.PutKey(c, "mac", []byte("second"), ver)
	if err != nil || ver2 <= ver {
		t.Fatalf("update: version %d, %v", ver2, err)
	}
	if got, _, _ := s.GetKey(c, "mac"); string(got) != "second" {
		t.Errorf("after update: %q", got)
	}
	if _, _, err := s.GetKey(c, "../x"); !errors.Is(err, secrets.ErrInvalid) {
		t.Errorf("bad name: %v, want ErrInvalid", err)
	}
	// Replicas starting together: one creator wins, the rest see ErrConflict.
	wins, _ := race(t, "racing create", 8, func(i int) error {
		_, err := s.PutKey(c, "race", []byte{byte(i)}, 0)
		return err
	})
	if wins != 1 {
		t.Errorf("%d racing creates won, want 1", wins)
	}
}

// race calls write(0), …, write(n-1) at once, as writers of one record on
// replicas do, and returns how many succeeded and how many were refused
// with ErrConflict; any other error fails t, reported as what.
func race(t *testing.T, what string, n int, write func(i int) error) (wins, conflicts int) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = write(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, secrets.ErrConflict):
			conflicts++
		default:
			t.Errorf("%s: %v", what, err)
		}
	}
	return wins, conflicts
}
