package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
)

// testTokenRecords checks the fields of a token record beyond its
// identity (name, expiry, lifetime) and the compare-and-set of a rotation.
func testTokenRecords(t *testing.T, s secrets.Store) {
	c := ctx(t)
	created := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	expires := created.Add(30 * 24 * time.Hour)
	tok := secrets.Token{ID: "tok-a", Hash: Hash("a"), Role: secrets.RoleDevice, DeviceID: "lamp-7", Name: "lamp 7, line 2",
		CreatedAt: created, ExpiresAt: &expires, LifetimeSeconds: 30 * 86400}
	if err := s.PutToken(c, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	got, err := s.GetToken(c, tok.ID)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if got.Name != tok.Name || got.ExpiresAt == nil || !got.ExpiresAt.Equal(expires) || got.LifetimeSeconds != tok.LifetimeSeconds ||
		got.ReplacedBy != "" || got.ReplacedAt != nil {
		t.Fatalf("token read back = %+v, want %+v", got, tok)
	}
	at := created.Add(20 * 24 * time.Hour)
	rep, err := s.ReplaceToken(c, tok.ID, "tok-b", at)
	if err != nil {
		t.Fatalf("ReplaceToken: %v", err)
	}
	if rep.ReplacedBy != "tok-b" || rep.ReplacedAt == nil || !rep.ReplacedAt.Equal(at) || rep.Name != tok.Name {
		t.Fatalf("ReplaceToken returned %+v", rep)
	}
	for _, by := range []string{"tok-b", "tok-c"} {
		if _, err := s.ReplaceToken(c, tok.ID, by, at.Add(time.Hour)); !errors.Is(err, secrets.ErrConflict) {
			t.Errorf("replacing a replaced token (by %s): %v, want ErrConflict", by, err)
		}
	}
	byHash, err := s.TokenByHash(c, tok.Hash)
	if err != nil || byHash.ReplacedBy != "tok-b" || !byHash.ReplacedAt.Equal(at) {
		t.Fatalf("TokenByHash after ReplaceToken = %+v, %v", byHash, err)
	}
	if _, err := s.ReplaceToken(c, "tok-none", "tok-b", at); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("ReplaceToken of an unknown token: %v, want ErrNotFound", err)
	}
	if _, err := s.ReplaceToken(c, "bad/id", "tok-b", at); !errors.Is(err, secrets.ErrInvalid) {
		t.Errorf("ReplaceToken with a bad ID: %v, want ErrInvalid", err)
	}
	// A revoked token is never replaced.
	rev := secrets.Token{ID: "tok-r", Hash: Hash("r"), Role: secrets.RoleDevice, DeviceID: "lamp-7", CreatedAt: created}
	if err := s.PutToken(c, rev); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(c, rev.ID, at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceToken(c, rev.ID, "tok-x", at); !errors.Is(err, secrets.ErrConflict) {
		t.Errorf("ReplaceToken of a revoked token: %v, want ErrConflict", err)
	}
	// Of concurrent rotations of one token, exactly one wins.
	rotated := secrets.Token{ID: "tok-race", Hash: Hash("race"), Role: secrets.RoleDevice, DeviceID: "lamp-8", CreatedAt: created}
	if err := s.PutToken(c, rotated); err != nil {
		t.Fatal(err)
	}
	const n = 8
	won, _ := race(t, "concurrent ReplaceToken", n, func(i int) error {
		_, err := s.ReplaceToken(c, rotated.ID, fmt.Sprintf("tok-next-%d", i), at)
		return err
	})
	if won != 1 {
		t.Errorf("%d of %d concurrent rotations of one token succeeded, want 1", won, n)
	}
}

// testListTokens checks ListTokens: owners apart, sorted, paged without an
// empty page before the end, revoked and replaced tokens listed.
func testListTokens(t *testing.T, s secrets.Store) {
	c := ctx(t)
	created := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var want7, wantProv []string
	for i := range 7 {
		id := fmt.Sprintf("t%02d", i)
		role, dev := secrets.RoleDevice, "lamp-7"
		switch i % 3 {
		case 1:
			dev = "lamp-70" // a device whose ID extends the other's
		case 2:
			role, dev = secrets.RoleProvisioner, ""
		}
		if err := s.PutToken(c, secrets.Token{ID: id, Hash: Hash(id), Role: role, DeviceID: dev, CreatedAt: created}); err != nil {
			t.Fatalf("PutToken(%s): %v", id, err)
		}
		switch {
		case role == secrets.RoleProvisioner:
			wantProv = append(wantProv, id)
		case dev == "lamp-7":
			want7 = append(want7, id)
		}
	}
	if err := s.RevokeToken(c, "t00", created); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		opts secrets.TokenListOptions
		want []string
	}{
		{secrets.TokenListOptions{Role: secrets.RoleDevice, DeviceID: "lamp-7"}, want7},
		{secrets.TokenListOptions{Role: secrets.RoleProvisioner}, wantProv},
		{secrets.TokenListOptions{Role: secrets.RoleDevice, DeviceID: "lamp-none"}, nil},
	}
	for _, tc := range tests {
		for _, limit := range []int{0, 1, 2, 100} {
			var all []string
			opts := tc.opts
			opts.Limit = limit
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatalf("%+v: no end", opts)
				}
				p, err := s.ListTokens(c, opts)
				if err != nil {
					t.Fatalf("ListTokens(%+v): %v", opts, err)
				}
				if len(p.Tokens) == 0 && p.Next != "" {
					t.Fatalf("ListTokens(%+v): an empty page with next %q", opts, p.Next)
				}
				if limit > 0 && len(p.Tokens) > limit {
					t.Fatalf("ListTokens(%+v): %d tokens", opts, len(p.Tokens))
				}
				for _, tok := range p.Tokens {
					all = append(all, tok.ID)
					if tok.ID == "t00" && tok.RevokedAt == nil {
						t.Errorf("listed t00 without its revocation")
					}
				}
				if p.Next == "" {
					break
				}
				opts.After = p.Next
			}
			if fmt.Sprint(all) != fmt.Sprint(tc.want) {
				t.Errorf("ListTokens(%+v) listed %v, want %v", tc.opts, all, tc.want)
			}
		}
	}
	for _, bad := range []secrets.TokenListOptions{{Role: "admin"}, {Role: secrets.RoleDevice}, {Role: secrets.RoleDevice, DeviceID: "a/b"}} {
		if _, err := s.ListTokens(c, bad); !errors.Is(err, secrets.ErrInvalid) {
			t.Errorf("ListTokens(%+v): %v, want ErrInvalid", bad, err)
		}
	}
}

// testEnrolmentTokens checks EnrolmentTokenStore: round trip, the
// compare-and-set, one winner among concurrent writers, listing by group,
// and records in the layout from before they were typed (raw KeyStore
// values) read as they are.
func testEnrolmentTokens(t *testing.T, s secrets.Store) {
	c := ctx(t)
	created := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	if _, err := s.GetEnrolmentToken(c, "e1"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("GetEnrolmentToken of a missing token: %v", err)
	}
	e := secrets.EnrolmentToken{ID: "e1", Hash: Hash("e1"), Group: "lamps", Name: "line 2", MaxUses: 10,
		ExpiresAt: created.Add(time.Hour), IDPattern: "lamp-[0-9]+", CreatedAt: created, GroupCreatedAt: created.Add(-time.Hour)}
	v, err := s.PutEnrolmentToken(c, e, 0)
	if err != nil || v < 1 {
		t.Fatalf("PutEnrolmentToken create: %d, %v", v, err)
	}
	if _, err := s.PutEnrolmentToken(c, e, 0); !errors.Is(err, secrets.ErrConflict) {
		t.Errorf("creating it again: %v, want ErrConflict", err)
	}
	got, err := s.GetEnrolmentToken(c, "e1")
	if err != nil {
		t.Fatal(err)
	}
	e.Version = v
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", e) {
		t.Fatalf("read back %+v, want %+v", got, e)
	}
	e.Uses = 1
	v2, err := s.PutEnrolmentToken(c, e, v)
	if err != nil || v2 <= v {
		t.Fatalf("PutEnrolmentToken update: %d, %v", v2, err)
	}
	if _, err := s.PutEnrolmentToken(c, e, v); !errors.Is(err, secrets.ErrConflict) {
		t.Errorf("update at a stale version: %v, want ErrConflict", err)
	}
	// Concurrent uses counted at one version: one wins.
	const n = 6
	var wg sync.WaitGroup
	won := make([]bool, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := e
			next.Uses = int64(2 + i)
			_, err := s.PutEnrolmentToken(c, next, v2)
			won[i] = err == nil
		}()
	}
	wg.Wait()
	count := 0
	for _, w := range won {
		if w {
			count++
		}
	}
	if count != 1 {
		t.Errorf("%d concurrent writes at one version succeeded, want 1", count)
	}
	// A record as credsign wrote it through the KeyStore before.
	old := `{"id":"e0","hash":"` + Hash("e0") + `","group":"lamps","maxUses":5,"uses":2,"expiresAt":"2026-11-24T10:00:00Z","createdAt":"2026-11-23T09:00:00Z","groupCreatedAt":"0001-01-01T00:00:00Z"}`
	if _, err := s.PutKey(c, secrets.EnrolmentKeyPrefix+"e0", []byte(old), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetEnrolmentToken(c, "e0"); err != nil || got.Uses != 2 || got.Name != "" || got.Group != "lamps" || got.Version < 1 {
		t.Fatalf("a record of the old layout reads as %+v, %v", got, err)
	}
	// Another group's token, and other keys, are not listed.
	other := e
	other.ID, other.Hash, other.Group = "e2", Hash("e2"), "sockets"
	if _, err := s.PutEnrolmentToken(c, other, 0); err != nil {
		t.Fatal(err)
	}
	third := e
	third.ID, third.Hash = "e3", Hash("e3")
	if _, err := s.PutEnrolmentToken(c, third, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKey(c, "enrolment-tokens", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{0, 1, 2} {
		var all []string
		after := ""
		for pages := 0; ; pages++ {
			p, err := s.ListEnrolmentTokens(c, "lamps", after, limit)
			if err != nil {
				t.Fatalf("ListEnrolmentTokens: %v", err)
			}
			if pages > 5 || len(p.Tokens) == 0 && p.Next != "" {
				t.Fatalf("ListEnrolmentTokens(limit %d): page %+v", limit, p)
			}
			for _, tok := range p.Tokens {
				all = append(all, tok.ID)
			}
			if p.Next == "" {
				break
			}
			after = p.Next
		}
		if fmt.Sprint(all) != "[e0 e1 e3]" {
			t.Errorf("ListEnrolmentTokens(lamps, limit %d) = %v, want [e0 e1 e3]", limit, all)
		}
	}
	if _, err := s.PutEnrolmentToken(c, secrets.EnrolmentToken{ID: "bad/id", Hash: Hash("x"), Group: "lamps"}, 0); !errors.Is(err, secrets.ErrInvalid) {
		t.Errorf("PutEnrolmentToken with a bad ID: %v, want ErrInvalid", err)
	}
}
