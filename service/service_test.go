package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
)

const admin = "service-test-admin-token-0123"

// counting is a real store that counts the reads the issuing path makes.
type counting struct {
	secrets.Store
	reads atomic.Int64
	// keys counts the reads of reads that were GetKey or GetEnrolmentToken
	// (the service's own records).
	keys atomic.Int64
}

func (c *counting) GetEnrolmentToken(ctx context.Context, id string) (secrets.EnrolmentToken, error) {
	c.reads.Add(1)
	c.keys.Add(1)
	return c.Store.GetEnrolmentToken(ctx, id)
}

func (c *counting) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	c.reads.Add(1)
	return c.Store.GetDevice(ctx, id)
}

func (c *counting) TokenByHash(ctx context.Context, h string) (secrets.Token, error) {
	c.reads.Add(1)
	return c.Store.TokenByHash(ctx, h)
}

func (c *counting) GetKey(ctx context.Context, name string) ([]byte, int64, error) {
	c.reads.Add(1)
	c.keys.Add(1)
	return c.Store.GetKey(ctx, name)
}

func newService(t testing.TB, cfg Config) (*Service, *counting) {
	t.Helper()
	fs, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	st := &counting{Store: fs}
	cfg.Store, cfg.AdminToken = st, admin
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

var adminCaller = Principal{TokenID: AdminTokenID, Role: RoleAdmin}

func azure(secret string) Document {
	return Document{Cloud: "azure", Params: map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "d"}, Secret: &secret}
}

// TestColdIssuanceOneRead: a boot storm's cold path costs one store read per
// device (the device record); the token is checked by its MAC, and each of
// the revokedShards lists of revoked tokens is read once per TTL for all
// devices.
func TestColdIssuanceOneRead(t *testing.T) {
	s, st := newService(t, Config{})
	ctx := context.Background()
	const n = 50
	tokens := make([]string, n)
	for i := range n {
		id := "dev-" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		if _, _, err := s.PutDevice(ctx, adminCaller, id, azure("c2VjcmV0LWtleS0xMjM0NTY3ODkw"), Precondition{}); err != nil {
			t.Fatal(err)
		}
		m, err := s.MintDeviceToken(ctx, adminCaller, id)
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = m.Text
	}
	// A fresh replica on the same store: nothing cached.
	s2, err := New(Config{Store: st, AdminToken: admin})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(svc *Service, text string) error {
		p, err := svc.Authenticate(ctx, "Bearer "+text)
		if err != nil {
			return err
		}
		_, err = svc.Issue(ctx, p, p.DeviceID, 0)
		return err
	}
	// Warm the replica's key and revocation list with one device.
	if err := issue(s2, tokens[0]); err != nil {
		t.Fatal(err)
	}
	before, keysBefore := st.reads.Load(), st.keys.Load()
	for _, tok := range tokens[1:] {
		if err := issue(s2, tok); err != nil {
			t.Fatal(err)
		}
	}
	keys := st.keys.Load() - keysBefore
	if reads := st.reads.Load() - before - keys; reads != n-1 || keys > revokedShards {
		t.Errorf("%d cold issuances made %d record reads and %d list reads, want %d (one each) and at most %d (each list once)",
			n-1, reads, keys, n-1, revokedShards)
	}
	before = st.reads.Load()
	for _, tok := range tokens {
		if err := issue(s2, tok); err != nil {
			t.Fatal(err)
		}
	}
	if reads := st.reads.Load() - before; reads != 0 {
		t.Errorf("%d warm issuances made %d store reads, want none", n, reads)
	}
}

// TestDeviceTokenChecks: forged, altered, revoked and foreign tokens are
// refused; tokens of the earlier format keep working.
func TestDeviceTokenChecks(t *testing.T) {
	s, st := newService(t, Config{Cache: CacheConfig{TTL: time.Hour}})
	ctx := context.Background()
	for _, id := range []string{"d1", "d2"} {
		if _, _, err := s.PutDevice(ctx, adminCaller, id, azure("c2VjcmV0LWtleS0xMjM0NTY3ODkw"), Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.MintDeviceToken(ctx, adminCaller, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Text, deviceTokenV2) {
		t.Fatalf("device token %.10s… is not v2", m.Text)
	}
	p, err := s.Authenticate(ctx, "Bearer "+m.Text)
	if err != nil || p.DeviceID != "d1" || p.TokenID != m.Record.ID || !p.CreatedAt.Equal(m.Record.CreatedAt) {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	parts := strings.Split(strings.TrimPrefix(m.Text, deviceTokenV2), ".")
	forged := []string{
		deviceTokenV2 + parts[0] + "." + b64.EncodeToString([]byte("d2")) + "." + parts[2] + "." + parts[3], // another device
		deviceTokenV2 + parts[0] + "." + parts[1] + "." + "1" + "." + parts[3],                              // an older mint time
		deviceTokenV2 + strings.Repeat("0", 20) + "." + parts[1] + "." + parts[2] + "." + parts[3],          // another ID
		m.Text[:len(m.Text)-2] + "AA", // another MAC
		deviceTokenV2 + "x.y",
		deviceTokenV2 + parts[0] + "." + parts[1] + "." + parts[2] + ".",
	}
	for _, f := range forged {
		var se *Error
		if _, err := s.Authenticate(ctx, "Bearer "+f); !errors.As(err, &se) || se.Code != CodeUnauthorized {
			t.Errorf("forged %q: %v, want unauthorized", f, err)
		}
	}
	// Another replica (same store) accepts it; after a revoke on the first,
	// the first refuses at once and the second once its list is older than
	// its TTL (here: a replica whose TTL is short).
	clk := &wallClock{}
	s2, err := New(Config{Store: st, AdminToken: admin, Cache: CacheConfig{TTL: 50 * time.Millisecond}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Authenticate(ctx, "Bearer "+m.Text); err != nil {
		t.Fatalf("second replica: %v", err)
	}
	if err := s.RevokeDeviceToken(ctx, adminCaller, "d1", m.Record.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "Bearer "+m.Text); err == nil {
		t.Error("revoked token accepted by the replica that revoked it")
	}
	clk.advance(60 * time.Millisecond)
	if _, err := s2.Authenticate(ctx, "Bearer "+m.Text); err == nil {
		t.Error("revoked token accepted by another replica past its TTL")
	}
	// Concurrent revokes from two replicas both land on the list.
	var wg sync.WaitGroup
	var texts [2]Minted
	for i := range texts {
		if texts[i], err = s.MintDeviceToken(ctx, adminCaller, "d2"); err != nil {
			t.Fatal(err)
		}
	}
	for i, svc := range []*Service{s, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.RevokeDeviceToken(ctx, adminCaller, "d2", texts[i].Record.ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s3, _ := New(Config{Store: st, AdminToken: admin})
	for _, m := range texts {
		if _, err := s3.Authenticate(ctx, "Bearer "+m.Text); err == nil {
			t.Error("a token revoked concurrently is accepted")
		}
	}
	// A token of the earlier format (csd_ and 64 hex digits, looked up by
	// its hash) keeps working.
	old, err := NewToken(secrets.RoleDevice, "d2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutToken(ctx, old.Record); err != nil {
		t.Fatal(err)
	}
	if p, err := s3.Authenticate(ctx, "Bearer "+old.Text); err != nil || p.DeviceID != "d2" {
		t.Errorf("earlier-format token: %+v %v", p, err)
	}
}

// TestRevokedLists: revocations spread over the sharded lists (none holds
// more than its share), and a token on the list written before the shards
// is still refused.
func TestRevokedLists(t *testing.T) {
	s, st := newService(t, Config{Cache: CacheConfig{TTL: time.Hour}})
	ctx := context.Background()
	if _, _, err := s.PutDevice(ctx, adminCaller, "d1", azure("c2VjcmV0LWtleS0xMjM0NTY3ODkw"), Precondition{}); err != nil {
		t.Fatal(err)
	}
	const n = 256
	minted := make([]Minted, n)
	for i := range minted {
		m, err := s.MintDeviceToken(ctx, adminCaller, "d1")
		if err != nil {
			t.Fatal(err)
		}
		minted[i] = m
	}
	// The oldest token goes on the list of the versions before the shards,
	// as they wrote it; the rest are revoked through the service.
	legacy, _ := json.Marshal([]string{minted[0].Record.ID})
	if _, err := st.PutKey(ctx, revokedKeyName, legacy, 0); err != nil {
		t.Fatal(err)
	}
	for _, m := range minted[1:] {
		if err := s.RevokeDeviceToken(ctx, adminCaller, "d1", m.Record.ID); err != nil {
			t.Fatal(err)
		}
	}
	largest, lists := 0, 0
	for i := range revokedShards {
		name := revokedKeyName + "." + fmt.Sprintf("%02x", i)
		raw, _, err := st.GetKey(ctx, name)
		if errors.Is(err, secrets.ErrNotFound) {
			continue
		}
		var ids []string
		if err != nil || json.Unmarshal(raw, &ids) != nil {
			t.Fatalf("list %s: %v", name, err)
		}
		lists++
		largest = max(largest, len(ids))
	}
	if lists < revokedShards/2 || largest > 4*n/revokedShards+4 {
		t.Errorf("%d revocations went to %d lists, the largest holding %d: not spread", n-1, lists, largest)
	}
	fresh, err := New(Config{Store: st, AdminToken: admin})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range minted {
		if _, err := fresh.Authenticate(ctx, "Bearer "+m.Text); err == nil {
			t.Fatalf("token %d accepted after its revocation", i)
		}
	}
	other, err := s.MintDeviceToken(ctx, adminCaller, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Authenticate(ctx, "Bearer "+other.Text); err != nil {
		t.Fatalf("a token never revoked is refused: %v", err)
	}
}
