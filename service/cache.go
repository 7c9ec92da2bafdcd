package service

import (
	"context"
	"crypto/subtle"
	"errors"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/credsign/credsign/internal/metrics"
	"github.com/credsign/credsign/secrets"
)

// Cache defaults.
const (
	// DefaultCacheSize is how many device records, and how many token
	// records, one replica keeps (about 1 KiB each).
	DefaultCacheSize = 200_000
	// DefaultCacheTTL is how long a record is used without asking the
	// store again. It bounds how stale another replica's view can be: a
	// revoke on replica A is honoured by replica B within it, store outage
	// or not; a delete or replace within it while B reaches the store.
	DefaultCacheTTL = 30 * time.Second
	// DefaultStaleFor is how long past the TTL device and group records
	// the cache knows keep serving while the store does not answer.
	DefaultStaleFor = 5 * time.Minute
)

// CacheConfig sizes the cache of device and token records that sits
// between the issuing path and the store.
type CacheConfig struct {
	// Size caps the records kept of each kind; zero means DefaultCacheSize.
	Size int
	// TTL is how long a record is served without a store read; zero means
	// DefaultCacheTTL, negative turns the cache off.
	TTL time.Duration
	// StaleFor is how long past its TTL a device or group record may
	// still be served while the store is unavailable; zero means
	// DefaultStaleFor, negative never. Token records, and the lists of
	// revoked device tokens, are never served past the TTL: they say
	// whether a token still counts.
	StaleFor time.Duration
}

// entry is a cached answer of the store: a record, or "not found".
type entry[T any] struct {
	val      T
	notFound bool
	// at is when the read that got it began.
	at time.Time
}

// freshness says how long a cached answer serves: until fresh old without
// a store read, and until stale old while the store does not answer.
type freshness struct{ fresh, stale time.Duration }

// recordFreshness is for device and group records: TTL, then the stale
// window while the store does not answer.
func (c *cache) recordFreshness() freshness {
	f := freshness{fresh: c.ttl, stale: c.ttl}
	if c.staleFor > 0 {
		f.stale += c.staleFor
	}
	return f
}

// revocableFreshness is for token records, which a revoke changes: read
// again at half the TTL, so that a store outage shorter than that goes
// unnoticed, and never served past the TTL, so that a revoke on another
// replica is honoured here within the TTL even while the store does not
// answer.
func (c *cache) revocableFreshness() freshness {
	return freshness{fresh: c.ttl / 2, stale: c.ttl}
}

// cache keeps the records the issuing path reads (devices by ID, tokens by
// hash, groups by ID), with single-flight on misses and negative entries for unknown
// tokens, so that a flood of bad tokens or a boot storm of one fleet does
// not become a flood of store reads. Records it returns are shared: callers
// must not modify their maps. This replica's own writes, revokes and
// deletes take effect at once (the entry is dropped); other replicas' within
// the TTL.
type cache struct {
	store    secrets.Store
	metrics  *metrics.Metrics
	ttl      time.Duration
	staleFor time.Duration
	now      func() time.Time

	devices *lru.Cache[string, entry[secrets.Device]]
	tokens  *lru.Cache[string, entry[secrets.Token]]
	// groups holds the groups of devices without a secret of their own,
	// read when such a device is issued for (few: one per group).
	groups *lru.Cache[string, entry[secrets.Group]]
	// enrolments holds, per enrolment token ID, the SHA-256 of its text
	// (which never changes: records are revoked, never rewritten with
	// another text, never deleted) or that the ID is unknown (for TTL).
	// A forged token whose ID is cached costs no store read.
	enrolments *lru.Cache[string, entry[string]]
	flight     singleflight.Group
	// downSince is when the store was first seen unavailable (Unix nanos),
	// zero while it answers.
	downSince atomic.Int64
	// gen counts this replica's invalidations: a read that started before
	// one does not cache what it read, which may predate the write.
	gen atomic.Uint64
}

func newCache(store secrets.Store, m *metrics.Metrics, cfg CacheConfig, now func() time.Time) (*cache, error) {
	c := &cache{store: store, metrics: m, ttl: cfg.TTL, staleFor: cfg.StaleFor, now: now}
	if c.ttl == 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.staleFor == 0 {
		c.staleFor = DefaultStaleFor
	}
	size := cfg.Size
	if size <= 0 {
		size = DefaultCacheSize
	}
	var err error
	if c.devices, err = lru.New[string, entry[secrets.Device]](size); err != nil {
		return nil, err
	}
	if c.tokens, err = lru.New[string, entry[secrets.Token]](size); err != nil {
		return nil, err
	}
	if c.groups, err = lru.New[string, entry[secrets.Group]](size); err != nil {
		return nil, err
	}
	c.enrolments, err = lru.New[string, entry[string]](size)
	return c, err
}

// enabled reports whether records are cached at all.
func (c *cache) enabled() bool { return c.ttl > 0 }

// device returns device id, from the cache when fresh.
func (c *cache) device(ctx context.Context, id string) (secrets.Device, error) {
	if !c.enabled() {
		return c.store.GetDevice(ctx, id)
	}
	return lookup(ctx, c, c.devices, c.recordFreshness(), "device", "d:", id, secrets.Store.GetDevice)
}

// group returns group id, from the cache when fresh.
func (c *cache) group(ctx context.Context, id string) (secrets.Group, error) {
	if !c.enabled() {
		return c.store.GetGroup(ctx, id)
	}
	return lookup(ctx, c, c.groups, c.recordFreshness(), "group", "g:", id, secrets.Store.GetGroup)
}

// TokenByHash returns the token whose text hashes to hash, from the cache
// when fresh.
func (c *cache) TokenByHash(ctx context.Context, hash string) (secrets.Token, error) {
	if !c.enabled() {
		return c.store.TokenByHash(ctx, hash)
	}
	return lookup(ctx, c, c.tokens, c.revocableFreshness(), "token", "t:", hash, secrets.Store.TokenByHash)
}

// errWrongText says that an enrolment token's text is not the one minted
// for its ID: the cache knew the hash, so the store was not asked.
var errWrongText = errors.New("the enrolment token text does not match its ID")

// enrolment reads the record of enrolment token id for a text whose
// SHA-256 (lowercase hex) is hash: the record (with its version), ErrNotFound for
// an ID that does not exist, errWrongText for a text whose ID is known but
// whose hash is not the record's. An unknown ID is answered from the cache
// for TTL and a known ID's hash for as long as it stays cached, so a flood
// of forged enrolment tokens reads the store once per ID, not once per
// request; a known, matching text always reads the record (its uses,
// revocation and version must be current). Concurrent reads of one ID are
// one read (single flight). rememberHash records the hash of a record read.
func (c *cache) enrolment(ctx context.Context, id, hash string) (secrets.EnrolmentToken, error) {
	read := func(ctx context.Context) (secrets.EnrolmentToken, error) {
		return c.store.GetEnrolmentToken(ctx, id)
	}
	if !c.enabled() {
		return read(ctx)
	}
	if e, ok := c.enrolments.Get(id); ok {
		switch {
		case e.notFound && c.now().Sub(e.at) < c.ttl:
			c.metrics.Cache("enrolment", "hit")
			return secrets.EnrolmentToken{}, secrets.ErrNotFound
		case !e.notFound && subtle.ConstantTimeCompare([]byte(e.val), []byte(hash)) != 1:
			c.metrics.Cache("enrolment", "hit")
			return secrets.EnrolmentToken{}, errWrongText
		}
	}
	c.metrics.Cache("enrolment", "miss")
	ch := c.flight.DoChan("e:"+id, func() (any, error) {
		gen := c.gen.Load()
		rec, err := read(context.WithoutCancel(ctx))
		switch {
		case err == nil:
			c.up()
		case errors.Is(err, secrets.ErrNotFound):
			c.up()
			if c.gen.Load() == gen {
				c.enrolments.Add(id, entry[string]{notFound: true, at: c.now()})
			}
		case errors.Is(err, secrets.ErrUnavailable):
			c.down()
		}
		return rec, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return secrets.EnrolmentToken{}, res.Err
		}
		return res.Val.(secrets.EnrolmentToken), nil
	case <-ctx.Done():
		return secrets.EnrolmentToken{}, ctx.Err()
	}
}

// rememberHash records the hash of enrolment token id, read from its record.
func (c *cache) rememberHash(id, hash string) {
	if c.enabled() {
		c.enrolments.Add(id, entry[string]{val: hash, at: c.now()})
	}
}

// forgetEnrolment drops what the cache knows of enrolment token id after
// this replica minted it.
func (c *cache) forgetEnrolment(id string) {
	if c.enabled() {
		c.gen.Add(1)
		c.enrolments.Remove(id)
	}
}

// lookup serves key from lc when its entry is younger than f.fresh;
// otherwise it reads the store (read(ctx, c.store, key)) once for every
// concurrent caller (single flight on flightPrefix+key) and caches the
// answer, found or not found. When the store is unavailable, an entry
// younger than f.stale is served instead of the error. A hit allocates
// nothing (read is a method expression, not a closure).
func lookup[T any](ctx context.Context, c *cache, lc *lru.Cache[string, entry[T]], f freshness, kind, flightPrefix, key string,
	read func(secrets.Store, context.Context, string) (T, error)) (T, error) {
	var zero T
	e, ok := lc.Get(key)
	if ok && c.now().Sub(e.at) < f.fresh {
		c.metrics.Cache(kind, "hit")
		if e.notFound {
			return zero, secrets.ErrNotFound
		}
		return e.val, nil
	}
	c.metrics.Cache(kind, "miss")
	// The read is shared by every caller waiting for it, so one caller's
	// cancellation must not fail the others; the store bounds its own calls.
	ch := c.flight.DoChan(flightPrefix+key, func() (any, error) {
		gen := c.gen.Load()
		start := c.now()
		v, err := read(c.store, context.WithoutCancel(ctx), key)
		switch {
		case err == nil:
			c.up()
			if c.gen.Load() == gen {
				lc.Add(key, entry[T]{val: v, at: start})
			}
		case errors.Is(err, secrets.ErrNotFound):
			c.up()
			if c.gen.Load() == gen {
				lc.Add(key, entry[T]{notFound: true, at: start})
			}
		case errors.Is(err, secrets.ErrUnavailable):
			c.down()
		}
		return v, err
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	if errors.Is(res.Err, secrets.ErrUnavailable) && ok && !e.notFound && c.now().Sub(e.at) < f.stale {
		c.metrics.Cache(kind, "stale")
		return e.val, nil
	}
	if res.Err != nil {
		return zero, res.Err
	}
	return res.Val.(T), nil
}

func (c *cache) up() { c.downSince.Store(0) }

func (c *cache) down() { c.downSince.CompareAndSwap(0, c.now().UnixNano()) }

// degraded reports whether the store has been seen unavailable and known
// devices are still being served from the cache, and until when at most.
func (c *cache) degraded() (bool, time.Time) {
	since := c.downSince.Load()
	if since == 0 || !c.enabled() || c.staleFor <= 0 {
		return false, time.Time{}
	}
	until := time.Unix(0, since).Add(c.ttl + c.staleFor)
	return c.now().Before(until), until
}

// forgetDevice drops device id after this replica wrote or deleted it.
func (c *cache) forgetDevice(id string) {
	if c.enabled() {
		c.gen.Add(1)
		c.devices.Remove(id)
	}
}

// forgetGroup drops group id after this replica wrote or deleted it.
func (c *cache) forgetGroup(id string) {
	if c.enabled() {
		c.gen.Add(1)
		c.groups.Remove(id)
	}
}

// forgetHash drops the token with this hash after this replica stored or
// revoked it.
func (c *cache) forgetHash(hash string) {
	if c.enabled() {
		c.gen.Add(1)
		c.tokens.Remove(hash)
	}
}
