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

// deleteRecord removes every version of the record of kind ("device",
// "group") at rel, or returns an error wrapping secrets.ErrNotFound.
// Cost: one metadata read and one delete.
func (s *Store) deleteRecord(ctx context.Context, kind, id, rel string) error {
	if !secrets.ValidID(id) {
		return fmt.Errorf("vaultstore: delete %s %.64q: %w", kind, id, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	ok, err := s.exists(ctx, rel)
	if err == nil && !ok {
		err = secrets.ErrNotFound
	}
	if err == nil {
		err = s.destroy(ctx, rel)
	}
	if err != nil {
		return fmt.Errorf("vaultstore: delete %s %q: %w", kind, id, err)
	}
	return nil
}
