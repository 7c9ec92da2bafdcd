package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/credsign/credsign/secrets"
)

// stamped is a record kept at a KV path of its own (a device, a group)
// whose creation and update times the store sets.
type stamped[T any] interface {
	*T
	stamp(created, updated time.Time)
	createdAt() time.Time
	// carry sets what the record keeps from the one it replaces (old, nil
	// for a create) and returns more text to scrub from errors.
	carry(old *T, now time.Time) []string
}

func (d *deviceData) stamp(created, updated time.Time)    { d.CreatedAt, d.UpdatedAt = created, updated }
func (d *deviceData) createdAt() time.Time                { return d.CreatedAt }
func (g *groupData) stamp(created, updated time.Time)     { g.CreatedAt, g.UpdatedAt = created, updated }
func (g *groupData) createdAt() time.Time                 { return g.CreatedAt }
func (g *groupData) carry(*groupData, time.Time) []string { return nil }

// recordKind is a kind of secrets record R (a device, a group) that the
// store keeps as D at a KV path of its own, <prefix><folder><id>.
type recordKind[R, D any, P stamped[D]] struct {
	name      string // in errors: "device", "group"
	folder    string
	normalize func(R) (R, error)
	id        func(R) string
	// data is what the store writes for r, given n, r normalized: the
	// times and bookkeeping are r's, which a put replaces (putRecord) and
	// an import keeps.
	data func(n, r R) D
	// record is the record of d, stored at id with a KV version.
	record func(id string, d D, version int64) R
	// creds are r's secrets, scrubbed from errors.
	creds func(r R) []string
}

func (k recordKind[R, D, P]) rel(id string) string { return k.folder + id }

// read reads record id; ok is false when it does not exist. Cost: one
// Vault read.
func (k recordKind[R, D, P]) read(ctx context.Context, s *Store, id string) (r R, ok bool, err error) {
	d, version, ok, err := readRecord[D](ctx, s, k.rel(id))
	if err != nil || !ok {
		return r, false, err
	}
	return k.record(id, d, version), true, nil
}

// get returns record id or an error wrapping secrets.ErrNotFound. Cost:
// one Vault read.
func (k recordKind[R, D, P]) get(ctx context.Context, s *Store, id string) (R, error) {
	var zero R
	if !secrets.ValidID(id) {
		return zero, fmt.Errorf("vaultstore: get %s %.64q: %w", k.name, id, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	r, ok, err := k.read(ctx, s, id)
	if err == nil && !ok {
		err = secrets.ErrNotFound
	}
	if err != nil {
		return zero, fmt.Errorf("vaultstore: get %s %q: %w", k.name, id, err)
	}
	return r, nil
}

// put writes r under the compare-and-set rules of the secrets stores,
// stamping its times and bookkeeping (see putRecord for its cost).
func (k recordKind[R, D, P]) put(ctx context.Context, s *Store, r R, ifVersion int64) (R, error) {
	var zero R
	id := k.id(r)
	if !secrets.ValidID(id) {
		return zero, fmt.Errorf("vaultstore: put %s %.64q: %w", k.name, id, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	n, err := k.normalize(r)
	if err != nil {
		return zero, fmt.Errorf("vaultstore: put %s %q: %w", k.name, id, err)
	}
	out, v, err := putRecord[D, P](ctx, s, k.rel(id), k.data(n, r), ifVersion, k.creds(r)...)
	if err != nil {
		return zero, fmt.Errorf("vaultstore: put %s %q: %w", k.name, id, err)
	}
	return k.record(id, out, v), nil
}

// importAs writes r as it is, times and bookkeeping included, under the
// compare-and-set rules (see importRecord).
func (k recordKind[R, D, P]) importAs(ctx context.Context, s *Store, r R, ifVersion int64) (R, error) {
	var zero R
	id := k.id(r)
	n, err := k.normalize(r)
	if err != nil || !secrets.ValidID(id) {
		return zero, fmt.Errorf("vaultstore: import %s %.64q: %w", k.name, id, errors.Join(err, secrets.ErrInvalid))
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	d := k.data(n, r)
	v, err := importRecord[D](ctx, s, k.rel(id), d, ifVersion, k.creds(r)...)
	if err != nil {
		return zero, fmt.Errorf("vaultstore: import %s %q: %w", k.name, id, err)
	}
	return k.record(id, d, v), nil
}

// readRecord reads the record at rel; ok is false when there is none
// (version may still be set when its latest version was deleted by hand).
// Cost: one Vault read.
func readRecord[T any](ctx context.Context, s *Store, rel string) (rec T, version int64, ok bool, err error) {
	e, err := s.read(ctx, rel)
	if err != nil || e.data == nil {
		return rec, e.version, false, err
	}
	if err := json.Unmarshal(e.data, &rec); err != nil {
		return rec, 0, false, fmt.Errorf("decode record: %w", err)
	}
	return rec, e.version, true, nil
}

// putRecord writes rec at rel under the compare-and-set rules of the
// secrets stores (secrets.CheckVersion) with KV check-and-set, stamps its
// times, and returns it as written with its KV version. creds are scrubbed
// from errors.
//
// Cost: a create (ifVersion 0) is one write with check-and-set 0, which
// Vault refuses when the entry has any version; only then is it read (an
// entry whose latest version was deleted by hand is no record, and is
// written over). Anything else is one read and one write, again after a
// lost race for an unconditional write.
func putRecord[T any, P stamped[T]](ctx context.Context, s *Store, rel string, rec T, ifVersion int64, creds ...string) (T, int64, error) {
	if ifVersion == 0 {
		now := time.Now().UTC()
		P(&rec).stamp(now, now)
		P(&rec).carry(nil, now)
		v, err := s.write(ctx, rel, rec, 0, creds...)
		if err == nil {
			return rec, v, nil
		}
		if !errors.Is(err, secrets.ErrConflict) {
			return rec, 0, err
		}
	}
	for attempt := 0; ; attempt++ {
		cur, version, exists, err := readRecord[T](ctx, s, rel)
		if err != nil {
			return rec, 0, err
		}
		current := int64(0)
		if exists {
			current = version
		}
		if err := secrets.CheckVersion(current, ifVersion); err != nil {
			return rec, 0, err
		}
		now := time.Now().UTC()
		created := now
		var old *T
		if exists {
			created, old = P(&cur).createdAt(), &cur
		}
		P(&rec).stamp(created, now)
		scrub := append(P(&rec).carry(old, now), creds...)
		// version, not current: a record whose latest KV version was
		// deleted by hand does not exist but has a version to pass.
		v, err := s.write(ctx, rel, rec, version, scrub...)
		if errors.Is(err, secrets.ErrConflict) && ifVersion < 0 && attempt < casRetries {
			continue // lost a race; an unconditional write tries again
		}
		if err != nil {
			return rec, 0, err
		}
		return rec, v, nil
	}
}

// delete removes every version of record id, or returns an error
// wrapping secrets.ErrNotFound. Cost: one metadata read and one delete.
func (k recordKind[R, D, P]) delete(ctx context.Context, s *Store, id string) error {
	if !secrets.ValidID(id) {
		return fmt.Errorf("vaultstore: delete %s %.64q: %w", k.name, id, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	rel := k.rel(id)
	ok, err := s.exists(ctx, rel)
	if err == nil && !ok {
		err = secrets.ErrNotFound
	}
	if err == nil {
		err = s.destroy(ctx, rel)
	}
	if err != nil {
		return fmt.Errorf("vaultstore: delete %s %q: %w", k.name, id, err)
	}
	return nil
}
