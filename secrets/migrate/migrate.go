// Package migrate copies every record of one secrets.Store into another:
// from the embedded store to Vault (a trial going to production) and back.
//
// Records move as the service wrote them: devices and groups with their
// secrets, token records with their hashes and times, and the KeyStore
// values (the MAC key device tokens are checked with, the lists of revoked
// device tokens, the JWT signing key ring, enrolment tokens). Tokens are
// stored only by hash, so copying the records keeps every token working;
// nothing is re-issued. Devices and groups keep their creation and update
// times (secrets.Importer: a device token minted before its device's
// creation time is refused). Versions are the destination's own: device,
// group and key versions start again at 1 (so do the ETags derived from
// them).
//
// A copy is resumable: a record already at the destination and equal to
// the source's is skipped, one that differs is left alone and counted as a
// conflict unless Options.Force overwrites it. A revoked (or rotated)
// source token whose copy is not is revoked (or marked rotated) at the
// destination: a token revoked or rotated between two runs. Options.DryRun counts without writing.
package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/credsign/credsign/secrets"
)

// Options tunes Copy.
type Options struct {
	// DryRun reads both stores and counts what would be written, writing
	// nothing.
	DryRun bool
	// Force overwrites records that differ at the destination.
	Force bool
	// Parallel bounds the reads and writes under way at once (each a round
	// trip to Vault); 0 means 32.
	Parallel int
	// Batch is how many records are read before they are written; 0 means
	// 500.
	Batch int
	// Progress, when set, is called after each batch with the counts so far.
	Progress func(Report)
}

// Tally counts the records of one kind.
type Tally struct {
	// Source is how many records the source holds.
	Source int `json:"source"`
	// Copied were absent at the destination and written (or, in a dry run,
	// would be).
	Copied int `json:"copied"`
	// Same were already equal at the destination.
	Same int `json:"same"`
	// Updated differed and were overwritten (Force), or were tokens revoked
	// at the source only.
	Updated int `json:"updated"`
	// Conflicts differ at the destination and were left alone.
	Conflicts int `json:"conflicts"`
}

// Report is the outcome of Copy, by kind.
type Report map[secrets.Kind]Tally

// ErrConflicts is returned (wrapped) when records differ at the destination
// and Options.Force is not set; everything else was copied.
var ErrConflicts = errors.New("records differ at the destination")

// Copy copies every record of from into to, kind by kind in the order of
// secrets.Kinds. from must be a secrets.Enumerator and to a
// secrets.Importer (both credsign stores are both). Cost per record: one
// read at the source, one at the destination, one write when it is copied
// (tokens: two reads at each end on Vault, by ID and by hash, and two
// writes), Options.Parallel at once; the embedded store commits concurrent
// writes together. It returns the counts so far with the first error that
// stopped it.
func Copy(ctx context.Context, from, to secrets.Store, opts Options) (Report, error) {
	enum, ok := secrets.As[secrets.Enumerator](from)
	if !ok {
		return nil, errors.New("migrate: the source store cannot list its records")
	}
	imp, ok := secrets.As[secrets.Importer](to)
	if !ok {
		return nil, errors.New("migrate: the destination store cannot keep the records' times")
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	c := &copier{from: from, to: to, imp: imp, opts: opts, report: Report{}}
	for _, kind := range secrets.Kinds {
		ids, err := enum.IDs(ctx, kind)
		if err != nil {
			return c.report, fmt.Errorf("migrate: %w", err)
		}
		t := c.report[kind]
		t.Source = len(ids)
		c.report[kind] = t
		for start := 0; start < len(ids); start += opts.Batch {
			batch := ids[start:min(start+opts.Batch, len(ids))]
			if err := c.batch(ctx, kind, batch); err != nil {
				return c.report, fmt.Errorf("migrate: %s: %w", kind, err)
			}
			if opts.Progress != nil {
				opts.Progress(c.report)
			}
		}
	}
	var conflicts int
	for _, t := range c.report {
		conflicts += t.Conflicts
	}
	if conflicts > 0 {
		return c.report, fmt.Errorf("migrate: %d %w (left as they are; rerun with force to overwrite them)", conflicts, ErrConflicts)
	}
	return c.report, nil
}

type copier struct {
	from, to secrets.Store
	imp      secrets.Importer // to, as an Importer
	opts     Options
	mu       sync.Mutex
	report   Report
}

// outcome is what one record needs.
type outcome int

const (
	same outcome = iota
	create
	update
	conflict
	gone // deleted at the source since it was listed
)

// item is one record of a batch: what was read at both ends and what it
// needs.
type item struct {
	id   string
	need outcome
	// the source record and the destination's version (for an overwrite)
	device  secrets.Device
	group   secrets.Group
	token   secrets.Token
	key     []byte
	version int64
}

// batch reads ids at both ends (Parallel at once), then writes what they
// need.
func (c *copier) batch(ctx context.Context, kind secrets.Kind, ids []string) error {
	items := make([]item, len(ids))
	if err := c.each(ctx, len(ids), func(i int) error {
		var err error
		items[i], err = c.compare(ctx, kind, ids[i])
		return err
	}); err != nil {
		return err
	}
	var writes []int
	for i, it := range items {
		if (it.need == create || it.need == update) && !c.opts.DryRun {
			writes = append(writes, i) // counted once written
			continue
		}
		c.count(kind, it.need)
	}
	return c.each(ctx, len(writes), func(j int) error {
		it := items[writes[j]]
		if err := c.write(ctx, kind, it); err != nil {
			return fmt.Errorf("%q: %w", it.id, err)
		}
		c.count(kind, it.need)
		return nil
	})
}

// count adds one record's outcome to the report.
func (c *copier) count(kind secrets.Kind, o outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.report[kind]
	switch o {
	case same:
		t.Same++
	case create:
		t.Copied++
	case update:
		t.Updated++
	case conflict:
		t.Conflicts++
	case gone:
		t.Source--
	}
	c.report[kind] = t
}

// each runs fn(0..n-1), Parallel at once, and returns the first error.
func (c *copier) each(ctx context.Context, n int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, c.opts.Parallel)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err() // the caller's context ended
	}
	return first
}

// decide says what a record needs given whether the destination has one
// and whether it is equal.
func (c *copier) decide(found, equal bool) outcome {
	switch {
	case !found:
		return create
	case equal:
		return same
	case c.opts.Force:
		return update
	}
	return conflict
}

// compare reads record id of kind at both ends.
func (c *copier) compare(ctx context.Context, kind secrets.Kind, id string) (item, error) {
	it := item{id: id}
	switch kind {
	case secrets.KindDevice:
		src, dst, found, err := readBoth(ctx, &it, c.from.GetDevice, c.to.GetDevice)
		if err != nil || it.need == gone {
			return it, err
		}
		a, errA := secrets.NormalizeDevice(src)
		b, errB := secrets.NormalizeDevice(dst)
		equal := errA == nil && errB == nil && reflect.DeepEqual(canonicalKeys(a), canonicalKeys(b)) &&
			src.CreatedAt.Equal(dst.CreatedAt) && sameSecretBooks(src, dst)
		a.CreatedAt, a.UpdatedAt = src.CreatedAt, src.UpdatedAt
		// The secret's bookkeeping goes as it is: the version a device's
		// secret is at, the one it replaced and when.
		a.SecretVersion, a.PreviousSecret, a.SecretRotatedAt = src.SecretVersion, src.PreviousSecret, src.SecretRotatedAt
		it.device, it.version = a, dst.Version
		it.need = c.decide(found, equal)
		return it, errA
	case secrets.KindGroup:
		src, dst, found, err := readBoth(ctx, &it, c.from.GetGroup, c.to.GetGroup)
		if err != nil || it.need == gone {
			return it, err
		}
		a, errA := secrets.NormalizeGroup(src)
		b, errB := secrets.NormalizeGroup(dst)
		equal := errA == nil && errB == nil && reflect.DeepEqual(a, b) && src.CreatedAt.Equal(dst.CreatedAt)
		a.CreatedAt, a.UpdatedAt = src.CreatedAt, src.UpdatedAt
		it.group, it.version = a, dst.Version
		it.need = c.decide(found, equal)
		return it, errA
	case secrets.KindToken:
		src, dst, found, err := readBoth(ctx, &it, c.from.GetToken, c.to.GetToken)
		if err != nil || it.need == gone {
			return it, err
		}
		it.token = src
		switch {
		case !found:
			it.need = create
		case sameToken(src, dst):
			it.need = same
		case sameToken(since(src, dst), dst) && (src.ReplacedBy == dst.ReplacedBy || dst.RevokedAt == nil):
			// Revoked or rotated at the source since the last run (a
			// token revoked at the destination cannot be rotated there).
			it.need = update
		default:
			// A token record cannot be rewritten (its hash is its key),
			// so even Force leaves it: the operator must look.
			it.need = conflict
		}
		return it, nil
	case secrets.KindKey:
		src, _, err := c.from.GetKey(ctx, id)
		if errors.Is(err, secrets.ErrNotFound) {
			it.need = gone
			return it, nil
		}
		if err != nil {
			return it, err
		}
		dst, version, err := c.to.GetKey(ctx, id)
		found, err := present(err)
		if err != nil {
			return it, err
		}
		it.key, it.version = src, version
		it.need = c.decide(found, string(src) == string(dst))
		return it, nil
	}
	return it, fmt.Errorf("unknown kind %q", kind)
}

// readBoth reads record it.id from the source with from and, when the
// source has it, from the destination with to; found says whether the
// destination has it. A record the source does not have sets it.need to gone.
func readBoth[T any](ctx context.Context, it *item, from, to func(context.Context, string) (T, error)) (src, dst T, found bool, err error) {
	src, err = from(ctx, it.id)
	if errors.Is(err, secrets.ErrNotFound) {
		it.need = gone
		return src, dst, false, nil
	}
	if err != nil {
		return src, dst, false, err
	}
	dst, err = to(ctx, it.id)
	found, err = present(err)
	return src, dst, found, err
}

// present turns a destination read's error into whether the record exists.
func present(err error) (bool, error) {
	if errors.Is(err, secrets.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// since returns src as it was before the changes a token record takes
// after it is written (a revocation, a rotation) that dst has not had: if
// the result is dst, src is dst with those changes only, which the
// destination's RevokeToken and ReplaceToken can make.
func since(src, dst secrets.Token) secrets.Token {
	if src.RevokedAt != nil && dst.RevokedAt == nil {
		src.RevokedAt = nil
	}
	if src.ReplacedBy != "" && dst.ReplacedBy == "" {
		src.ReplacedBy, src.ReplacedAt = "", nil
	}
	return src
}

// sameToken reports whether two token records are equal, field for field.
func sameToken(a, b secrets.Token) bool {
	return a.ID == b.ID && a.Hash == b.Hash && a.Role == b.Role && a.DeviceID == b.DeviceID && a.Name == b.Name &&
		a.CreatedAt.Equal(b.CreatedAt) && sameTime(a.ExpiresAt, b.ExpiresAt) && a.LifetimeSeconds == b.LifetimeSeconds &&
		sameTime(a.RevokedAt, b.RevokedAt) && a.ReplacedBy == b.ReplacedBy && sameTime(a.ReplacedAt, b.ReplacedAt) &&
		sameScope(a.Scope, b.Scope)
}

// sameScope reports whether two scopes admit the same records (nil and
// empty lists alike).
func sameScope(a, b *secrets.Scope) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Groups, b.Groups) && maps.Equal(a.Labels, b.Labels)
}

// sameTime reports whether two optional times are the same instant (or
// both absent).
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// canonicalKeys returns d with its keys' JWKs in one member order (Vault
// gives JSON objects back with their members sorted, the embedded store
// as they were written), so that equal keys compare equal.
func canonicalKeys(d secrets.Device) secrets.Device {
	keys := make([]secrets.DeviceKey, len(d.Keys))
	for i, k := range d.Keys {
		var v any
		if json.Unmarshal(k.JWK, &v) == nil {
			k.JWK, _ = json.Marshal(v)
		}
		keys[i] = k
	}
	d.Keys = keys
	return d
}

// sameSecretBooks reports whether two devices' secret bookkeeping is the
// same (a record written before it existed reads as version 1).
func sameSecretBooks(a, b secrets.Device) bool {
	return max(a.SecretVersion, 1) == max(b.SecretVersion, 1) && a.PreviousSecret == b.PreviousSecret &&
		sameTime(a.SecretRotatedAt, b.SecretRotatedAt)
}

// write writes one record that needs it.
func (c *copier) write(ctx context.Context, kind secrets.Kind, it item) error {
	ifVersion := int64(0)
	if it.need == update {
		ifVersion = it.version
	}
	switch kind {
	case secrets.KindDevice:
		_, err := c.imp.ImportDevice(ctx, it.device, ifVersion)
		return err
	case secrets.KindGroup:
		_, err := c.imp.ImportGroup(ctx, it.group, ifVersion)
		return err
	case secrets.KindKey:
		_, err := c.to.PutKey(ctx, it.id, it.key, ifVersion)
		return err
	case secrets.KindToken:
		if it.need != update {
			return c.to.PutToken(ctx, it.token)
		}
		// Rotated first: a revoked token can no longer be replaced.
		if it.token.ReplacedBy != "" {
			dst, err := c.to.GetToken(ctx, it.id)
			if err != nil {
				return err
			}
			if dst.ReplacedBy == "" {
				if _, err := c.to.ReplaceToken(ctx, it.id, it.token.ReplacedBy, *it.token.ReplacedAt); err != nil {
					return err
				}
			}
		}
		if it.token.RevokedAt != nil {
			return c.to.RevokeToken(ctx, it.id, *it.token.RevokedAt)
		}
		return nil
	}
	return fmt.Errorf("unknown kind %q", kind)
}
