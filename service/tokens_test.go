package service

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
)

// shiftClock makes the device token checks of s see the wall clock moved
// by d (the checks of tokens carrying their binding read deviceTokens.now).
func shiftClock(s *Service, d time.Duration) {
	var off atomic.Int64
	off.Store(int64(d))
	s.devTokens.now = func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
}

// wallClock is the wall clock moved on by advance: the service's clock
// (Config.Now) in tests of its time rules, instead of sleeping. It stays
// ahead of the stores' stamps, as a clock of a service should.
type wallClock struct{ off atomic.Int64 }

func (c *wallClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *wallClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func detail(err error) string {
	var se *Error
	if errors.As(err, &se) {
		return se.Detail
	}
	return ""
}

func putLamp(t *testing.T, s *Service, id string) {
	t.Helper()
	if _, _, err := s.PutDevice(context.Background(), adminCaller, id, azure("c2VjcmV0"), Precondition{}); err != nil {
		t.Fatal(err)
	}
}

// TestMintTokenChecks: names and lifetimes out of bounds are refused with
// the field named, and nothing is stored.
func TestMintTokenChecks(t *testing.T) {
	s, _ := newService(t, Config{})
	putLamp(t, s, "lamp")
	tests := []struct {
		name  string
		req   TokenRequest
		field string
	}{
		{"lifetime too short", TokenRequest{TTL: time.Hour}, "ttlSeconds"},
		{"lifetime too long", TokenRequest{TTL: MaxTokenLifetime + time.Second}, "ttlSeconds"},
		{"negative lifetime", TokenRequest{TTL: -time.Hour}, "ttlSeconds"},
		{"name too long", TokenRequest{Name: strings.Repeat("n", MaxTokenName+1)}, "name"},
		{"name with a newline", TokenRequest{Name: "a\nb"}, "name"},
	}
	for _, tc := range tests {
		for _, role := range []string{secrets.RoleDevice, secrets.RoleProvisioner} {
			req := tc.req
			req.Role = role
			if role == secrets.RoleDevice {
				req.DeviceID = "lamp"
			}
			_, err := s.MintToken(context.Background(), adminCaller, req)
			if f := InvalidFields(err); len(f) != 1 || f[0].Field != tc.field {
				t.Errorf("%s (%s): %v, want field %s", tc.name, role, err, tc.field)
			}
		}
	}
	for _, role := range []string{secrets.RoleDevice, secrets.RoleProvisioner} {
		p, err := s.ListTokens(context.Background(), role, "lamp", "", 0)
		if err != nil || len(p.Tokens) != 0 {
			t.Errorf("refused mints stored %s tokens: %+v, %v", role, p.Tokens, err)
		}
	}
}

// TestTokenExpiry: a token with a lifetime works until it ends, then is
// refused with a reason a device can log; for v3 device tokens (checked
// by their MAC) and for provisioner tokens (checked by their record).
func TestTokenExpiry(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	putLamp(t, s, "lamp")
	dev, err := s.MintToken(ctx, adminCaller, TokenRequest{Role: secrets.RoleDevice, DeviceID: "lamp", Name: "lamp main", TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dev.Text, deviceTokenV3) || dev.Record.ExpiresAt == nil || dev.Record.LifetimeSeconds != 48*3600 {
		t.Fatalf("minted %q, record %+v", dev.Text, dev.Record)
	}
	if _, err := s.Authenticate(ctx, "Bearer "+dev.Text); err != nil {
		t.Fatalf("a fresh token: %v", err)
	}
	// The expiry is under the MAC: moving it forward forges nothing.
	parts := strings.Split(dev.Text, ".")
	parts[4] = parts[4] + "0"
	if _, err := s.Authenticate(ctx, "Bearer "+strings.Join(parts, ".")); code(err) != CodeUnauthorized || detail(err) != errUnauthorized().Detail {
		t.Errorf("a token with its expiry changed: %v", err)
	}
	shiftClock(s, 48*time.Hour+time.Second)
	_, err = s.Authenticate(ctx, "Bearer "+dev.Text)
	if code(err) != CodeUnauthorized || detail(err) != "token expired: re-enrol" {
		t.Errorf("an expired device token: %v, want 401 token expired", err)
	}

	prov, err := s.MintToken(ctx, adminCaller, TokenRequest{Role: secrets.RoleProvisioner, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "Bearer "+prov.Text); err != nil {
		t.Fatalf("a fresh provisioner token: %v", err)
	}
	// Its record, as the store has it, says it expired.
	past := time.Now().Add(-time.Second)
	old, _ := NewToken(secrets.RoleProvisioner, "", time.Now().Add(-time.Hour))
	old.Record.ExpiresAt = &past
	if err := s.store.PutToken(ctx, old.Record); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "Bearer "+old.Text); detail(err) != "token expired: re-enrol" {
		t.Errorf("an expired provisioner token: %v", err)
	}
}

// TestRotateDeviceToken: a device exchanges its token for one of the same
// name and lifetime; the old one works for the overlap, then is refused;
// a second rotation of the old one is refused and kills the successor.
func TestRotateDeviceToken(t *testing.T) {
	s, _ := newService(t, Config{RotationOverlap: time.Minute})
	ctx := context.Background()
	putLamp(t, s, "lamp")
	putLamp(t, s, "other")
	old, err := s.MintToken(ctx, adminCaller, TokenRequest{Role: secrets.RoleDevice, DeviceID: "lamp", Name: "lamp main", TTL: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p := mustAuth(t, s, old.Text)
	if _, err := s.RotateDeviceToken(ctx, p, "other"); code(err) != CodeForbidden {
		t.Errorf("rotating for another device: %v, want forbidden", err)
	}
	if _, err := s.RotateDeviceToken(ctx, adminCaller, "lamp"); code(err) != CodeForbidden {
		t.Errorf("the admin rotating: %v, want forbidden", err)
	}
	next, err := s.RotateDeviceToken(ctx, p, "lamp")
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	r := next.Record
	if r.ID == old.Record.ID || r.Name != "lamp main" || r.LifetimeSeconds != old.Record.LifetimeSeconds || r.DeviceID != "lamp" ||
		r.ExpiresAt == nil || !r.ExpiresAt.After(*old.Record.ExpiresAt) {
		t.Fatalf("successor %+v of %+v", r, old.Record)
	}
	for _, text := range []string{old.Text, next.Text} {
		if _, err := s.Authenticate(ctx, "Bearer "+text); err != nil {
			t.Errorf("within the overlap: %v", err)
		}
	}
	stored, err := s.store.GetToken(ctx, old.Record.ID)
	if err != nil || stored.ReplacedBy != r.ID || stored.ReplacedAt == nil {
		t.Fatalf("old record %+v, %v", stored, err)
	}
	shiftClock(s, time.Minute+time.Second)
	if _, err := s.Authenticate(ctx, "Bearer "+old.Text); code(err) != CodeUnauthorized {
		t.Errorf("the old token after the overlap: %v, want 401", err)
	}
	if _, err := s.Authenticate(ctx, "Bearer "+next.Text); err != nil {
		t.Errorf("the new token after the overlap: %v", err)
	}
	shiftClock(s, 0)
	// A copy of the old token (say, stolen) tries to rotate: refused, and
	// the successor dies with it.
	if _, err := s.RotateDeviceToken(ctx, p, "lamp"); code(err) != CodeUnauthorized || !strings.Contains(detail(err), "rotated already") {
		t.Fatalf("second rotation of one token: %v, want 401", err)
	}
	if _, err := s.Authenticate(ctx, "Bearer "+next.Text); code(err) != CodeUnauthorized {
		t.Errorf("the successor of a reused token: %v, want revoked", err)
	}
	page, err := s.ListTokens(ctx, secrets.RoleDevice, "lamp", "", 0)
	if err != nil || len(page.Tokens) != 2 {
		t.Fatalf("ListTokens: %+v, %v", page, err)
	}
	if page.Tokens[0].State != TokenRotated || page.Tokens[1].State != TokenRevoked || page.Tokens[0].Hash != "" {
		t.Errorf("listed %+v", page.Tokens)
	}
}

// TestRotateLegacyRecordToken: a device token checked by its record (minted
// before tokens carried their binding) rotates too, and stops after the
// overlap.
func TestRotateLegacyRecordToken(t *testing.T) {
	clk := &wallClock{}
	s, _ := newService(t, Config{RotationOverlap: time.Nanosecond, Now: clk.now})
	ctx := context.Background()
	putLamp(t, s, "lamp")
	old, _ := NewToken(secrets.RoleDevice, "lamp", clk.now())
	if err := s.store.PutToken(ctx, old.Record); err != nil {
		t.Fatal(err)
	}
	next, err := s.RotateDeviceToken(ctx, mustAuth(t, s, old.Text), "lamp")
	if err != nil {
		t.Fatal(err)
	}
	if next.Record.ExpiresAt != nil || !strings.HasPrefix(next.Text, deviceTokenV2) {
		t.Errorf("the successor of a token without lifetime: %q %+v", next.Text, next.Record)
	}
	clk.advance(time.Millisecond) // past the 1 ns overlap
	if _, err := s.Authenticate(ctx, "Bearer "+old.Text); code(err) != CodeUnauthorized {
		t.Errorf("the old record token after the overlap: %v, want 401", err)
	}
}

// TestListTokens: provisioner tokens and each device's tokens apart,
// paged, never the text or hash.
func TestListTokens(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	putLamp(t, s, "lamp")
	putLamp(t, s, "lamp2")
	var ids []string
	for range 3 {
		m, err := s.MintToken(ctx, adminCaller, TokenRequest{Role: secrets.RoleDevice, DeviceID: "lamp", Name: "n"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Record.ID)
	}
	if _, err := s.MintDeviceToken(ctx, adminCaller, "lamp2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MintProvisionerToken(ctx, adminCaller, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for {
		p, err := s.ListTokens(ctx, secrets.RoleDevice, "lamp", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range p.Tokens {
			got = append(got, tk.ID)
			if tk.Hash != "" || tk.Name != "n" || tk.CreatedAt.IsZero() || tk.State != TokenActive {
				t.Errorf("listed %+v", tk)
			}
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("listed %v, want %v", got, ids)
	}
	if p, err := s.ListTokens(ctx, secrets.RoleProvisioner, "", "", 0); err != nil || len(p.Tokens) != 1 {
		t.Errorf("provisioner tokens: %+v, %v", p, err)
	}
	if _, err := s.ListTokens(ctx, secrets.RoleDevice, "absent", "", 0); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("tokens of an absent device: %v, want not found", err)
	}
}

// TestTokenKindsTable: every prefix credsign mints is in TokenKinds, with
// its role; the table is what Authenticate dispatches on.
func TestTokenKindsTable(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	putLamp(t, s, "lamp")
	dev, _ := s.MintDeviceToken(ctx, adminCaller, "lamp")
	prov, _ := s.MintProvisionerToken(ctx, adminCaller, nil)
	adm, _ := NewAdminToken()
	for _, tc := range []struct{ text, role string }{
		{dev.Text, secrets.RoleDevice}, {prov.Text, secrets.RoleProvisioner}, {adm, RoleAdmin},
		{PrefixEnrolment + "x.y", RoleEnrolment},
	} {
		k, ok := tokenKind(tc.text)
		if !ok || k.Role != tc.role || k.Format == "" || k.Storage == "" {
			t.Errorf("kind of %.8s…: %+v, %v", tc.text, k, ok)
		}
	}
	if _, ok := tokenKind("csx_abc"); ok {
		t.Error("an unknown prefix has a kind")
	}
}

// TestRotateTokenOfEarlierDevice: a token of a deleted device cannot mint,
// by rotating, a token for a new device of the same ID.
func TestRotateTokenOfEarlierDevice(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	putLamp(t, s, "lamp")
	old, err := s.MintToken(ctx, adminCaller, TokenRequest{Role: secrets.RoleDevice, DeviceID: "lamp", TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p := mustAuth(t, s, old.Text)
	if err := s.DeleteDevice(ctx, adminCaller, "lamp"); err != nil {
		t.Fatal(err)
	}
	putLamp(t, s, "lamp") // stamped by the store's clock, a delete later than the token
	if _, err := s.RotateDeviceToken(ctx, p, "lamp"); code(err) != CodeForbidden {
		t.Errorf("rotating a token of the earlier device: %v, want forbidden", err)
	}
}

// TestListEnrolmentTokensOfEarlierGroup: tokens of a deleted group of the
// same ID are left out, without an empty page that has a next.
func TestListEnrolmentTokensOfEarlierGroup(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	putLamps(t, s)
	for range 3 {
		mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour})
	}
	if err := s.DeleteGroup(ctx, adminCaller, "lamps"); err != nil {
		t.Fatal(err)
	}
	// The new group is stamped by the store's clock, a delete later than
	// the tokens.
	putLamps(t, s)
	now, _ := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour, Name: "today"})
	got, next, err := s.ListEnrolmentTokens(ctx, "lamps", "", 1)
	if err != nil || len(got) != 1 || got[0].ID != now.ID || got[0].Name != "today" || next != "" {
		t.Fatalf("listed %+v, next %q, %v; want only %s", got, next, err, now.ID)
	}
}
