package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
)

// testSecretVersions checks the secret's bookkeeping (secrets.CarrySecret):
// version 1 at creation, unchanged by a write of the same secret, one more
// with the previous secret kept on a rotation, and nothing changed by a
// refused write.
func testSecretVersions(t *testing.T, s secrets.Store) {
	first := device("rot-1", "aliyun")
	before := time.Now().Add(-time.Second)
	got := mustPut(t, s, first, 0)
	if got.SecretVersion != 1 || got.PreviousSecret != "" || got.SecretRotatedAt != nil {
		t.Fatalf("created: secretVersion %d, previous set %t, rotatedAt %v; want 1, false, nil",
			got.SecretVersion, got.PreviousSecret != "", got.SecretRotatedAt)
	}
	relabel := first
	relabel.Labels = map[string]string{"site": "sz"}
	got = mustPut(t, s, relabel, 1)
	if got.Version != 2 || got.SecretVersion != 1 || got.PreviousSecret != "" {
		t.Fatalf("same secret: version %d secretVersion %d previous set %t; want 2, 1, false", got.Version, got.SecretVersion, got.PreviousSecret != "")
	}
	secret := first.Secret
	for i := 2; i <= 3; i++ {
		next := relabel
		next.Secret = NewSecret()
		put := mustPut(t, s, next, got.Version)
		read, err := s.GetDevice(ctx(t), next.ID)
		if err != nil {
			t.Fatalf("GetDevice: %v", err)
		}
		for name, d := range map[string]secrets.Device{"PutDevice": put, "GetDevice": read} {
			if d.Secret != next.Secret || d.SecretVersion != int64(i) || d.PreviousSecret != secret {
				t.Fatalf("rotation %d, %s: secretVersion %d, secret is new %t, previous is the old secret %t",
					i, name, d.SecretVersion, d.Secret == next.Secret, d.PreviousSecret == secret)
			}
			if d.SecretRotatedAt == nil || d.SecretRotatedAt.Before(before) || !d.SecretRotatedAt.Equal(put.UpdatedAt) {
				t.Fatalf("rotation %d, %s: rotatedAt %v, want the write's time %v", i, name, d.SecretRotatedAt, put.UpdatedAt)
			}
		}
		secret, got = next.Secret, put
	}
	// A refused write changes nothing.
	stale := relabel
	stale.Secret = NewSecret()
	_, err := s.PutDevice(ctx(t), stale, 1)
	noSecret(t, err, stale.Secret)
	noSecret(t, err, secret)
	if !errors.Is(err, secrets.ErrConflict) {
		t.Fatalf("stale write: %v, want ErrConflict", err)
	}
	read, err := s.GetDevice(ctx(t), first.ID)
	if err != nil || read.SecretVersion != 3 || read.Secret != secret || read.Version != got.Version {
		t.Fatalf("after a refused write: secretVersion %d version %d (want 3, %d), secret kept %t, %v",
			read.SecretVersion, read.Version, got.Version, read.Secret == secret, err)
	}
	// A device created again starts over.
	if err := s.DeleteDevice(ctx(t), first.ID); err != nil {
		t.Fatal(err)
	}
	got = mustPut(t, s, first, 0)
	if got.SecretVersion != 1 || got.PreviousSecret != "" || got.SecretRotatedAt != nil {
		t.Fatalf("created again: secretVersion %d previous set %t", got.SecretVersion, got.PreviousSecret != "")
	}
}

// testListScan checks filtered listings and the scan budget: a page that is
// not full is the last one, unless Partial says the budget ran out, and
// the listing goes on from where the scan stopped.
func testListScan(t *testing.T, s secrets.Store) {
	for i := range 30 {
		d := device(fmt.Sprintf("scan-%02d", i), []string{"aliyun", "tencent"}[i%2])
		d.Labels = map[string]string{"site": []string{"sz", "bj", "sh"}[i%3]}
		if i == 25 {
			d.Labels["rare"] = "yes"
		}
		mustPut(t, s, d, 0)
	}
	type call struct {
		ids     []string
		next    string
		partial bool
		scanned int
	}
	tests := []struct {
		name string
		opts secrets.ListOptions
		want []call
	}{
		{"rare label, budget 10", secrets.ListOptions{Labels: map[string]string{"rare": "yes"}, MaxScan: 10, Limit: 5}, []call{
			{nil, "scan-09", true, 10}, {nil, "scan-19", true, 10}, {[]string{"scan-25"}, "", false, 10}}},
		{"rare label, store's budget", secrets.ListOptions{Labels: map[string]string{"rare": "yes"}}, []call{
			{[]string{"scan-25"}, "", false, 30}}},
		{"label and cloud", secrets.ListOptions{Cloud: "tencent", Labels: map[string]string{"site": "sz"}, Limit: 2}, []call{
			{[]string{"scan-03", "scan-09"}, "scan-09", false, 16}, {[]string{"scan-15", "scan-21"}, "scan-21", false, 18},
			{[]string{"scan-27"}, "", false, 2}}},
		{"page full at the budget", secrets.ListOptions{Labels: map[string]string{"site": "sz"}, Limit: 2, MaxScan: 4}, []call{
			{[]string{"scan-00", "scan-03"}, "scan-03", false, 4}, {[]string{"scan-06"}, "scan-07", true, 4},
		}},
		{"no match", secrets.ListOptions{Labels: map[string]string{"site": "nowhere"}, MaxScan: 20}, []call{
			{nil, "scan-19", true, 20}, {nil, "", false, 10}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			for i, want := range tc.want {
				page, err := s.ListDevices(ctx(t), opts)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				got := call{pageIDs(page), page.Next, page.Partial, page.Scanned}
				if len(got.ids) == 0 {
					got.ids = nil
				}
				if !slices.Equal(got.ids, want.ids) || got.next != want.next || got.partial != want.partial ||
					(want.scanned > 0 && got.scanned < want.scanned) {
					t.Fatalf("call %d after %q: got %+v, want %+v", i, opts.After, got, want)
				}
				if opts.MaxScan > 0 && page.Scanned > opts.MaxScan {
					t.Fatalf("call %d scanned %d, budget %d", i, page.Scanned, opts.MaxScan)
				}
				limit := max(opts.Limit, 1)
				if opts.Limit == 0 {
					limit = 100
				}
				if page.Next != "" && len(page.Devices) < limit && !page.Partial {
					t.Fatalf("call %d: a short page with next and no Partial", i)
				}
				for _, d := range page.Devices {
					if !opts.Matches(d) {
						t.Fatalf("call %d: %s does not match the filters", i, d.ID)
					}
				}
				if page.Next == "" {
					if i != len(tc.want)-1 {
						t.Fatalf("listing ended after %d calls, want %d", i+1, len(tc.want))
					}
					return
				}
				opts.After = page.Next
			}
		})
	}
}
