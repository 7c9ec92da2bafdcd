package service

// Scoped provisioner tokens. A provisioner token may be minted with a
// scope (secrets.Scope): some groups and/or a label selector. Such a token
// acts only on what is inside it; everything outside answers exactly as
// if it did not exist (CodeNotFound, or for a list, not listed).
//
// Inside the scope is, for a device: its group is one of Scope.Groups
// (when any are given; a device of no group is then outside) and it has
// every label of Scope.Labels with the value given. For a group: its ID
// is one of Scope.Groups (when any are given) and its own labels match
// Scope.Labels. The selector is equality only, every pair must match;
// a device that should be reachable by several values of a label is
// better given a label of its own, or its team a group.
//
// Each operation of openapi.yaml says how the scope applies to it
// (x-credsign-scope, read by the API's gate): ScopeDevice and ScopeGroup
// operations name their device or group in the path and the gate checks
// it with AuthorizeScope before the operation runs; ScopeFilter
// operations (lists, the import) apply the caller's scope to each record
// they read or write; ScopeNone operations touch no device or group.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/credsign/credsign/secrets"
)

// How an operation is scoped: the values of x-credsign-scope.
const (
	// ScopeDevice: the operation acts on the device its path names.
	ScopeDevice = "device"
	// ScopeGroup: the operation acts on the group its path names.
	ScopeGroup = "group"
	// ScopeFilter: the operation applies the scope to each device or
	// group it lists or writes.
	ScopeFilter = "filter"
	// ScopeNone: the operation touches no device or group (or a scoped
	// token may not call it at all).
	ScopeNone = "none"
)

// ScopeKinds lists every value of x-credsign-scope.
var ScopeKinds = []string{ScopeDevice, ScopeGroup, ScopeFilter, ScopeNone}

// MaxScopeGroups and MaxScopeLabels bound a scope, so that checking one
// stays cheap.
const (
	MaxScopeGroups = 100
	MaxScopeLabels = 16
)

// CheckScope validates a scope given when minting a token and returns it
// as stored (groups sorted and unique; nil for an empty scope).
func CheckScope(sc *secrets.Scope) (*secrets.Scope, error) {
	if sc == nil {
		return nil, nil
	}
	var fields []FieldError
	if len(sc.Groups) > MaxScopeGroups {
		fields = append(fields, FieldError{Field: "scope.groups", Reason: fmt.Sprintf("at most %d groups", MaxScopeGroups)})
	}
	for _, g := range sc.Groups {
		if !secrets.ValidID(g) {
			fields = append(fields, FieldError{Field: "scope.groups", Reason: "not a valid group ID"})
			break
		}
	}
	if len(sc.Labels) > MaxScopeLabels {
		fields = append(fields, FieldError{Field: "scope.labels", Reason: fmt.Sprintf("at most %d labels", MaxScopeLabels)})
	}
	for _, k := range slices.Sorted(maps.Keys(sc.Labels)) {
		if !validLabelKey.MatchString(k) {
			fields = append(fields, FieldError{Field: "scope.labels",
				Reason: "label keys are 1 to 63 letters, digits, '.', '_', '/', '-', starting with a letter or digit"})
			break
		}
		if hasControl(sc.Labels[k]) {
			fields = append(fields, FieldError{Field: "scope.labels." + clip(k), Reason: "must not contain control characters"})
		}
	}
	if len(sc.Groups) == 0 && len(sc.Labels) == 0 {
		fields = append(fields, FieldError{Field: "scope", Reason: "give groups, labels or both (leave scope out for an unscoped token)"})
	}
	if len(fields) > 0 {
		return nil, invalid(fields...)
	}
	out := &secrets.Scope{Labels: maps.Clone(sc.Labels)}
	if len(sc.Groups) > 0 {
		out.Groups = slices.Compact(slices.Sorted(slices.Values(sc.Groups)))
	}
	if len(out.Labels) == 0 {
		out.Labels = nil
	}
	return out, nil
}

// errOutsideScope is the answer for a device or group outside the caller's
// scope: the store's own "not found", so that its body is that of a
// record that does not exist.
var errOutsideScope = fmt.Errorf("reading: %w", secrets.ErrNotFound)

// landingFields names the fields of device d, about to be written by a
// caller with scope sc, that would put it outside the scope (none: it
// lands inside). The caller wrote them and knows its scope: naming them
// tells it nothing about records it cannot see.
func landingFields(sc *secrets.Scope, group string, labels map[string]string) []FieldError {
	if sc == nil {
		return nil
	}
	var fields []FieldError
	if !sc.HasGroupID(group) {
		fields = append(fields, FieldError{Field: "group", Reason: "outside this token's scope (its groups)"})
	}
	for _, k := range slices.Sorted(maps.Keys(sc.Labels)) {
		if v, ok := labels[k]; !ok || v != sc.Labels[k] {
			fields = append(fields, FieldError{Field: "labels." + clip(k), Reason: "outside this token's scope (its labels)"})
		}
	}
	return fields
}

// checkLanding refuses (CodeInvalid, naming the fields) a device write by
// caller that would leave the device outside the caller's scope.
func checkLanding(caller Principal, group string, labels map[string]string) error {
	if f := landingFields(caller.Scope, group, labels); len(f) > 0 {
		return invalid(f...)
	}
	return nil
}

// checkGroupLanding refuses a group write by caller that would leave the
// group outside the caller's scope.
func checkGroupLanding(caller Principal, id string, labels map[string]string) error {
	f := landingFields(caller.Scope, id, labels)
	for i := range f {
		if f[i].Field == "group" {
			f[i].Field = "groupId"
		}
	}
	if len(f) > 0 {
		return invalid(f...)
	}
	return nil
}

// AuthorizeScope decides whether caller's scope holds the device (kind
// ScopeDevice) or the group (ScopeGroup) named id, for an operation that
// passed Authorize. Unscoped callers, and other kinds, pass at once with
// no store read. For a scoped caller a record outside the scope is
// CodeNotFound with the body of a record that does not exist; so is a
// record that does not exist, unless the operation creates it (creates:
// PUT), whose document the operation then checks. An ID the store cannot
// hold passes, for the operation to refuse as it refuses anyone.
//
// Cost, for a scoped caller only: one read of the device or group through
// the record cache (none when the cache holds a fresh copy).
func (s *Service) AuthorizeScope(ctx context.Context, caller Principal, kind, id string, creates bool) error {
	if caller.Scope == nil || id == "" {
		return nil
	}
	var in bool
	var err error
	switch kind {
	case ScopeDevice:
		var d secrets.Device
		d, err = s.cache.device(ctx, id)
		in = err == nil && caller.Scope.HasDevice(d)
	case ScopeGroup:
		var g secrets.Group
		g, err = s.cache.group(ctx, id)
		in = err == nil && caller.Scope.HasGroup(g)
	default:
		return nil
	}
	switch {
	case errors.Is(err, secrets.ErrInvalid):
		return nil
	case errors.Is(err, secrets.ErrNotFound) && creates:
		return nil
	case errors.Is(err, secrets.ErrNotFound):
		return errOutsideScope
	case err != nil:
		return fmt.Errorf("reading for the token's scope: %w", err)
	case !in:
		return errOutsideScope
	}
	return nil
}

// listScopedGroups returns the page of groups after after that are inside
// sc, up to limit (0: 100), and the cursor of the next page: "" unless a
// group inside the scope follows, so that no page is empty before the
// end. With groups in the scope it reads each of them after the cursor
// (at most MaxScopeGroups reads, through the record cache); with labels
// only it reads the store's pages of groups until the page is full and
// one more is found, or the groups end (groups are few: the embedded
// store and Vault each list them as a handful of reads).
func (s *Service) listScopedGroups(ctx context.Context, sc *secrets.Scope, after string, limit int) ([]secrets.Group, string, error) {
	limit = secrets.PageLimit(limit)
	var out []secrets.Group
	// take keeps g if it is inside the scope; it reports whether the page
	// is done (full, and g is one more).
	take := func(g secrets.Group) bool {
		if !sc.HasGroup(g) {
			return false
		}
		if len(out) == limit {
			return true
		}
		g.Secret = ""
		out = append(out, g)
		return false
	}
	next := func() string { return out[len(out)-1].ID }
	if len(sc.Groups) > 0 {
		for _, id := range sc.Groups {
			if id <= after {
				continue
			}
			g, err := s.cache.group(ctx, id)
			switch {
			case errors.Is(err, secrets.ErrNotFound):
				continue
			case err != nil:
				return nil, "", fmt.Errorf("listing groups: %w", err)
			}
			if take(g) {
				return out, next(), nil
			}
		}
		return out, "", nil
	}
	for {
		p, err := s.store.ListGroups(ctx, after, limit)
		if err != nil {
			return nil, "", fmt.Errorf("listing groups: %w", err)
		}
		for _, g := range p.Groups {
			if take(g) {
				return out, next(), nil
			}
		}
		if p.Next == "" {
			return out, "", nil
		}
		after = p.Next
	}
}

// existsError is the answer to a create that found device id existing:
// CodeConflict, or for a device outside scope sc (one read to tell) the
// answer of a PUT by that caller, CodeNotFound.
func (s *Service) existsError(ctx context.Context, sc *secrets.Scope, id string) error {
	exists := newError(CodeConflict, "the device already exists")
	if sc == nil {
		return exists
	}
	cur, err := s.store.GetDevice(ctx, id)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return exists // deleted since: still a conflict of the create
	case err != nil:
		return fmt.Errorf("reading the existing device: %w", err)
	case !sc.HasDevice(cur):
		return errOutsideScope
	}
	return exists
}
