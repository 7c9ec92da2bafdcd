package secrets

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"iter"
	"sort"
	"time"
)

// CheckVersion applies the compare-and-set rule of DeviceStore.PutDevice:
// stored is the version of the device as it is now, 0 when it does not exist;
// ifVersion is the caller's condition (< 0 unconditional, 0 create-only, > 0
// that exact version). It returns nil when the write may go ahead, else an
// error wrapping ErrConflict that says why. Every store calls it, so the rule
// is written once.
func CheckVersion(stored, ifVersion int64) error {
	switch {
	case ifVersion == 0 && stored != 0:
		return fmt.Errorf("%w: device exists", ErrConflict)
	case ifVersion > 0 && stored == 0:
		return fmt.Errorf("%w: device does not exist", ErrConflict)
	case ifVersion > 0 && stored != ifVersion:
		return fmt.Errorf("%w: stored version is %d, not %d", ErrConflict, stored, ifVersion)
	}
	return nil
}

// NormalizeDevice returns the fields a caller writes (ID, Cloud, Params,
// Secret, Labels, Group) as every store reads them back: Params and Labels go
// through encoding/json, so numbers become float64 and empty maps nil. The
// result shares nothing with d and has no bookkeeping (Version, CreatedAt,
// UpdatedAt are zero). Params or labels JSON cannot encode (NaN, a channel)
// give an error wrapping ErrInvalid that quotes nothing of d.
func NormalizeDevice(d Device) (Device, error) {
	out, err := roundTrip(Device{ID: d.ID, Cloud: d.Cloud, Params: d.Params, Secret: d.Secret, Labels: d.Labels, Group: d.Group,
		Keys: d.Keys, RequireKey: d.RequireKey})
	if err != nil {
		return Device{}, err
	}
	out.Params, out.Labels = nilIfEmpty(out.Params), nilIfEmpty(out.Labels)
	if len(out.Keys) == 0 {
		out.Keys = nil
	}
	if len(out.Keys) > MaxDeviceKeys {
		return Device{}, fmt.Errorf("%w: a device holds at most %d keys", ErrInvalid, MaxDeviceKeys)
	}
	return out, nil
}

// NormalizeGroup is NormalizeDevice for a group: the fields a caller writes
// (ID, Cloud, Params, Secret, Labels, Registration) as every store reads
// them back, sharing nothing with g, without bookkeeping.
func NormalizeGroup(g Group) (Group, error) {
	out, err := roundTrip(Group{ID: g.ID, Cloud: g.Cloud, Params: g.Params, Secret: g.Secret, Labels: g.Labels, Registration: g.Registration,
		RequireKey: g.RequireKey, RequireAttestation: g.RequireAttestation})
	if err != nil {
		return Group{}, err
	}
	out.Params, out.Labels = nilIfEmpty(out.Params), nilIfEmpty(out.Labels)
	if out.Registration != nil {
		out.Registration.Params = nilIfEmpty(out.Registration.Params)
	}
	return out, nil
}

// roundTrip returns in as encoding/json reads it back: numbers in maps of
// any become float64, and the result shares nothing with in. What JSON
// cannot encode gives an error wrapping ErrInvalid that quotes nothing of
// in.
func roundTrip[T any](in T) (T, error) {
	var out T
	b, err := json.Marshal(in)
	if err != nil {
		return out, fmt.Errorf("%w: params or labels cannot be encoded as JSON", ErrInvalid)
	}
	defer clear(b)
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("%w: params or labels cannot be decoded", ErrInvalid)
	}
	return out, nil
}

// nilIfEmpty returns m, or nil when it is empty: a record reads back an
// empty map as none.
func nilIfEmpty[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return m
}

// CarrySecret sets the secret bookkeeping of next, a write that replaces
// old (nil for a create), as stored at now: a create has SecretVersion 1
// and no previous secret; a write whose Secret equals the stored one keeps
// old's bookkeeping; any other Secret is a rotation: SecretVersion one
// more than old's (a record without one counts as 1), PreviousSecret old's
// Secret, SecretRotatedAt now. Every store calls it in the write that
// replaces old, so the rule is written once.
func CarrySecret(old *Device, next *Device, now time.Time) {
	switch {
	case old == nil:
		next.SecretVersion, next.PreviousSecret, next.SecretRotatedAt = 1, "", nil
	case subtle.ConstantTimeCompare([]byte(old.Secret), []byte(next.Secret)) == 1:
		next.SecretVersion, next.PreviousSecret, next.SecretRotatedAt = max(old.SecretVersion, 1), old.PreviousSecret, old.SecretRotatedAt
	default:
		at := now.UTC()
		next.SecretVersion, next.PreviousSecret, next.SecretRotatedAt = max(old.SecretVersion, 1)+1, old.Secret, &at
	}
}

// CollectPage returns a page of a listing sorted by ID: of ids, the IDs
// after the cursor in order, the records that read keeps (ok false leaves
// one out: a stale index entry, another group's), at most limit of them,
// and the cursor of the next page: the page's last ID when one more record
// follows, else "". It reads one record past the page, to know whether a
// page follows, and stops there.
func CollectPage[T any](ids iter.Seq[string], limit int, read func(id string) (rec T, ok bool, err error)) ([]T, string, error) {
	var (
		recs []T
		last string
	)
	for id := range ids {
		rec, ok, err := read(id)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			continue
		}
		if len(recs) == limit {
			return recs, last, nil
		}
		recs, last = append(recs, rec), id
	}
	return recs, "", nil
}

// Matches reports whether d passes the filters of opts (Cloud, Group,
// Labels, Scope).
func (opts ListOptions) Matches(d Device) bool {
	if (opts.Cloud != "" && d.Cloud != opts.Cloud) || (opts.Group != "" && d.Group != opts.Group) {
		return false
	}
	return HasLabels(d.Labels, opts.Labels) && opts.Scope.HasDevice(d)
}

// HasLabels reports whether have holds every label of want with its value.
func HasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// HasDevice reports whether device d is inside the scope (a nil scope
// holds every device): its group is one of Groups (when Groups is not
// empty) and it has every label of Labels.
func (sc *Scope) HasDevice(d Device) bool {
	return sc == nil || (sc.HasGroupID(d.Group) && HasLabels(d.Labels, sc.Labels))
}

// HasGroup reports whether group g is inside the scope.
func (sc *Scope) HasGroup(g Group) bool {
	return sc == nil || (sc.HasGroupID(g.ID) && HasLabels(g.Labels, sc.Labels))
}

// HasGroupID reports whether the scope's group list admits group id ("" for
// no group: admitted only when the scope names no groups). Groups is kept
// sorted.
func (sc *Scope) HasGroupID(id string) bool {
	if sc == nil || len(sc.Groups) == 0 {
		return true
	}
	i := sort.SearchStrings(sc.Groups, id)
	return id != "" && i < len(sc.Groups) && sc.Groups[i] == id
}
