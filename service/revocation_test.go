package service

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
)

// partitioned is a real store that one replica reaches through; while down,
// the reads of the issuing path fail with ErrUnavailable. It is a fake for
// an outage (a partition between this replica and a store another replica
// still reaches), which a real store cannot produce for one client alone.
type partitioned struct {
	secrets.Store
	mu   sync.Mutex
	down bool
	// wait runs before a read fails: the time a real store's timeout takes.
	wait func()
}

func (p *partitioned) err() error {
	p.mu.Lock()
	down, wait := p.down, p.wait
	p.mu.Unlock()
	if !down {
		return nil
	}
	if wait != nil {
		wait()
	}
	return secrets.ErrUnavailable
}

func (p *partitioned) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

func (p *partitioned) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	if err := p.err(); err != nil {
		return secrets.Device{}, err
	}
	return p.Store.GetDevice(ctx, id)
}

func (p *partitioned) TokenByHash(ctx context.Context, h string) (secrets.Token, error) {
	if err := p.err(); err != nil {
		return secrets.Token{}, err
	}
	return p.Store.TokenByHash(ctx, h)
}

func (p *partitioned) GetKey(ctx context.Context, name string) ([]byte, int64, error) {
	if err := p.err(); err != nil {
		return nil, 0, err
	}
	return p.Store.GetKey(ctx, name)
}

// clock is a settable clock for a replica's cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestRevocationAcrossOutage: a revoke acknowledged on replica A just
// before replica B loses the store is honoured by B within the cache TTL
// (the promise of docs/api.md), for every kind of revocable token: a
// device token of the second form (the lists of revoked IDs), one of the
// first form and a provisioner token (token records). Devices B knows keep
// getting credentials for the admin through the stale window; an outage
// shorter than half the TTL goes unnoticed.
func TestRevocationAcrossOutage(t *testing.T) {
	const ttl, staleFor = 30 * time.Second, 5 * time.Minute
	ctx := context.Background()
	fs, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	cfg := Config{AdminToken: admin, Cache: CacheConfig{TTL: ttl, StaleFor: staleFor}}
	cfg.Store = fs
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	link := &partitioned{Store: fs}
	cfg.Store = link
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	b.cache.now, b.devTokens.now = clk.now, clk.now

	if _, _, err := a.PutDevice(ctx, adminCaller, "lamp", azure("c2VjcmV0LWtleS0xMjM0NTY3ODkw"), Precondition{}); err != nil {
		t.Fatal(err)
	}
	dev, err := a.MintDeviceToken(ctx, adminCaller, "lamp")
	if err != nil {
		t.Fatal(err)
	}
	prov, err := a.MintProvisionerToken(ctx, adminCaller, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A device token of the first form: only its record vouches for it.
	old, err := NewToken(secrets.RoleDevice, "lamp", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.PutToken(ctx, old.Record); err != nil {
		t.Fatal(err)
	}
	tokens := []struct {
		name string
		m    Minted
	}{{"device token", dev}, {"device token of the first form", old}, {"provisioner token", prov}}
	use := func(text string) error {
		p, err := b.Authenticate(ctx, "Bearer "+text)
		if err == nil && p.Role == secrets.RoleDevice {
			_, err = b.Issue(ctx, p, "lamp", 0)
		}
		return err
	}
	for _, tk := range tokens {
		if err := use(tk.m.Text); err != nil {
			t.Fatalf("%s on B: %v", tk.name, err)
		}
	}

	// An outage shorter than half the TTL goes unnoticed: what B read at
	// ttl/2 serves until ttl/2 + ttl.
	clk.advance(ttl / 2)
	for _, tk := range tokens {
		if err := use(tk.m.Text); err != nil {
			t.Fatalf("%s on B at ttl/2: %v", tk.name, err)
		}
	}
	link.setDown(true)
	clk.advance(ttl / 3)
	for _, tk := range tokens {
		if err := use(tk.m.Text); err != nil {
			t.Errorf("%s on B %v into an outage: %v", tk.name, ttl/3, err)
		}
	}
	link.setDown(false)
	clk.advance(ttl / 2) // every copy is past half the TTL: B reads again
	for _, tk := range tokens {
		if err := use(tk.m.Text); err != nil {
			t.Fatalf("%s on B after the outage: %v", tk.name, err)
		}
	}

	// A revokes every token; at once B loses the store.
	for _, tk := range tokens {
		if err := a.RevokeToken(ctx, adminCaller, tk.m.Record.ID); err != nil {
			t.Fatalf("revoke %s on A: %v", tk.name, err)
		}
	}
	link.setDown(true)
	// Within the TTL of the revoke and ever after, B refuses: 503 while it
	// cannot vouch for the token, 401 once the store answers.
	clk.advance(ttl)
	for _, tk := range tokens {
		if err := use(tk.m.Text); !errors.Is(err, secrets.ErrUnavailable) {
			t.Errorf("%s revoked on A %v ago, B without the store: %v, want unavailable (503)", tk.name, ttl, err)
		}
	}
	// The admin still gets credentials for the device B knows, through the
	// stale window.
	if _, err := b.Issue(ctx, adminCaller, "lamp", 0); err != nil {
		t.Errorf("admin issuing for a cached device during the outage: %v", err)
	}
	clk.advance(staleFor)
	if _, err := b.Issue(ctx, adminCaller, "lamp", 0); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("admin issuing past the stale window: %v, want unavailable", err)
	}
	link.setDown(false)
	for _, tk := range tokens {
		if err := use(tk.m.Text); code(err) != CodeUnauthorized {
			t.Errorf("%s revoked on A, B with the store back: %v, want unauthorized", tk.name, err)
		}
	}
}

// TestRevocationStaleAfterTimeout: the age of what vouches for a token is
// taken after a failed read, which may have waited out the store's timeout:
// a copy young enough when the request came is too old once the read gave
// up.
func TestRevocationStaleAfterTimeout(t *testing.T) {
	const ttl = 30 * time.Second
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	s, _ := newService(t, Config{Cache: CacheConfig{TTL: ttl}})
	// The first read to fail in each outage waits out a timeout of ttl/2.
	var timedOut bool
	link := &partitioned{Store: s.store, wait: func() {
		if !timedOut {
			timedOut = true
			clk.advance(ttl / 2)
		}
	}}
	b, err := New(Config{Store: link, AdminToken: admin, Cache: CacheConfig{TTL: ttl}})
	if err != nil {
		t.Fatal(err)
	}
	b.cache.now, b.devTokens.now = clk.now, clk.now
	if _, _, err := s.PutDevice(ctx, adminCaller, "lamp", azure("c2VjcmV0LWtleS0xMjM0NTY3ODkw"), Precondition{}); err != nil {
		t.Fatal(err)
	}
	prov, err := s.MintProvisionerToken(ctx, adminCaller, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := s.MintDeviceToken(ctx, adminCaller, "lamp")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Minted{dev, prov} {
		link.setDown(false)
		clk.advance(ttl) // what B holds is past its TTL: it reads again
		if _, err := b.Authenticate(ctx, "Bearer "+m.Text); err != nil {
			t.Fatal(err)
		}
		link.setDown(true)
		timedOut = false
		clk.advance(ttl * 2 / 3) // past half the TTL: B reads again, and the read takes ttl/2 to fail
		if _, err := b.Authenticate(ctx, "Bearer "+m.Text); !errors.Is(err, secrets.ErrUnavailable) {
			t.Errorf("%s token vouched for by a copy %v old: %v, want unavailable", m.Record.Role, ttl*2/3+ttl/2, err)
		}
	}
	// One list alone (a device token is checked against two, and the
	// second read would catch what the first let through).
	link.setDown(false)
	clk.advance(ttl)
	name := revokedListName(dev.Record.ID)
	if _, _, err := b.devTokens.onList(ctx, name, dev.Record.ID); err != nil {
		t.Fatal(err)
	}
	link.setDown(true)
	timedOut = false
	clk.advance(ttl * 2 / 3)
	if _, _, err := b.devTokens.onList(ctx, name, dev.Record.ID); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("a list %v old vouched: %v, want unavailable", ttl*2/3+ttl/2, err)
	}
}
