package service

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/credsign/credsign/secrets"
)

// patchRetries bounds how often a patch without a precondition is applied
// again to a device or group that changed between its read and its write.
const patchRetries = 3

// PatchDevice applies a JSON Merge Patch (RFC 7396; patch as encoding/json
// decodes an object) to device id's document, whose members are cloud,
// params, labels and group, and stores the result as PutDevice would, after
// the same checks (a trial signature included). The secret stays as stored:
// a patch naming it is refused, and one that would leave the device unable
// to sign (a cloud whose params or secret format the device's do not fit, a
// device of a group that derived its key taken out of the group) is refused
// with CodeInvalid naming each field, never quoting the secret. A null
// member removes it (a label, a param, the group). cond.Match is checked
// against the device read; the write is a compare-and-set on its version,
// so nothing is half-written. Without a precondition, a device that changed
// between the read and the write is patched again (up to patchRetries
// times); with one, the answer is CodePrecondition.
//
// Cost: one store read and one compare-and-set write (a Vault store reads
// the version again before writing), one group read for a device of a
// group.
func (s *Service) PatchDevice(ctx context.Context, caller Principal, id string, patch map[string]any, cond Precondition) (secrets.Device, error) {
	if fields := patchMembers(patch, "cloud", "params", "labels", "group"); len(fields) > 0 {
		return secrets.Device{}, invalid(fields...)
	}
	for attempt := 0; ; attempt++ {
		cur, err := toChange(ctx, s.store.GetDevice, "device", id, caller.Scope.HasDevice, cond.Match)
		if err != nil {
			return secrets.Device{}, err
		}
		doc, err := patchedDocument(cur, patch)
		if err != nil {
			return secrets.Device{}, err
		}
		stored, err := s.writeOver(ctx, caller, cur, doc)
		if errors.Is(err, errChanged) && cond.Match == nil && attempt < patchRetries {
			continue
		}
		if err != nil {
			return secrets.Device{}, err
		}
		ev := audit(ctx, caller, "device.patched").Str("deviceId", stored.ID).Str("cloud", stored.Cloud).
			Int64("version", stored.Version).Strs("members", slices.Sorted(maps.Keys(patch)))
		if stored.Group != "" {
			ev = ev.Str("group", stored.Group)
		}
		ev.Msg("audit")
		return withoutSecrets(stored), nil
	}
}

// RotateSecret replaces device id's secret with secret and nothing else:
// the secret is checked against the device's cloud with a trial
// signature, the store keeps the one it replaces as the previous secret
// (secrets.CarrySecret) and counts one more secret version. The device's
// tokens keep working. A secret equal to the current one is refused
// (CodeInvalid, field secret). The audit event secret.rotated names the
// device and the new version, never a secret.
//
// Cost: one store read, one compare-and-set write (a Vault store reads the
// version again before writing), one group read for a device of a group.
func (s *Service) RotateSecret(ctx context.Context, caller Principal, id, secret string, cond Precondition) (secrets.Device, error) {
	cur, err := toChange(ctx, s.store.GetDevice, "device", id, caller.Scope.HasDevice, cond.Match)
	if err != nil {
		return secrets.Device{}, err
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(cur.Secret)) == 1 {
		return secrets.Device{}, invalid(FieldError{Field: "secret", Reason: "is the current secret; nothing to rotate"})
	}
	doc := Document{Cloud: cur.Cloud, Params: cur.Params, Secret: &secret, Labels: cur.Labels, Group: cur.Group}
	stored, err := s.writeOver(ctx, caller, cur, doc)
	if err != nil {
		return secrets.Device{}, err
	}
	audit(ctx, caller, "secret.rotated").Str("deviceId", stored.ID).Str("cloud", stored.Cloud).
		Int64("secretVersion", stored.SecretVersion).Int64("version", stored.Version).Msg("audit")
	return withoutSecrets(stored), nil
}

// toChange reads record id of kind what ("device", "group") with get, for
// a change by a caller whose scope holds it (inScope, else
// errOutsideScope) and under a precondition (match, nil for none, else
// errChanged).
func toChange[T any](ctx context.Context, get func(context.Context, string) (T, error), what, id string, inScope, match func(T) bool) (T, error) {
	var zero T
	cur, err := get(ctx, id)
	switch {
	case err != nil:
		return zero, fmt.Errorf("reading %s: %w", what, err)
	case !inScope(cur):
		return zero, errOutsideScope
	case match != nil && !match(cur):
		return zero, errChanged
	}
	return cur, nil
}

// writeOver checks doc as PutDevice does (the caller's scope included) and
// writes it over cur, only if cur is still the stored version (errChanged
// otherwise).
func (s *Service) writeOver(ctx context.Context, caller Principal, cur secrets.Device, doc Document) (secrets.Device, error) {
	if err := checkLanding(caller, doc.Group, doc.Labels); err != nil {
		return secrets.Device{}, err
	}
	var (
		g   *secrets.Group
		err error
	)
	if doc.Group != "" {
		if doc, g, err = s.groupDocument(ctx, caller.Scope, cur.ID, doc); err != nil {
			return secrets.Device{}, err
		}
	}
	d, err := s.checkDocument(cur.ID, doc, g)
	if err != nil {
		return secrets.Device{}, err
	}
	// A patch or a secret rotation keeps the device's keys and key rule.
	d.Keys, d.RequireKey = cur.Keys, cur.RequireKey
	stored, err := s.store.PutDevice(ctx, d, cur.Version)
	s.cache.forgetDevice(cur.ID) // even on error: the write may have landed
	switch {
	case errors.Is(err, secrets.ErrConflict) || errors.Is(err, secrets.ErrNotFound):
		return secrets.Device{}, errChanged
	case err != nil:
		return secrets.Device{}, fmt.Errorf("storing device: %w", err)
	}
	return stored, nil
}

// withoutSecrets returns d without its current and previous secrets.
func withoutSecrets(d secrets.Device) secrets.Device {
	d.Secret, d.PreviousSecret = "", ""
	return d
}

// patchMembers names the members of a patch that are not among allowed
// (the secret with a hint where it is written).
func patchMembers(patch map[string]any, allowed ...string) []FieldError {
	var fields []FieldError
	for _, k := range slices.Sorted(maps.Keys(patch)) {
		switch {
		case slices.Contains(allowed, k):
		case k == "secret":
			fields = append(fields, FieldError{Field: "secret", Reason: "cannot be patched; it is kept as stored (rotate it with PUT /v1/devices/{id}/secret, or replace the group with PUT)"})
		default:
			fields = append(fields, FieldError{Field: clip(k), Reason: "not a member that can be patched"})
		}
	}
	return fields
}

// patchedDocument applies patch to cur's document and returns the result
// with cur's secret (nil when it has none).
func patchedDocument(cur secrets.Device, patch map[string]any) (Document, error) {
	target := map[string]any{"cloud": cur.Cloud, "params": anyMap(cur.Params), "labels": stringMap(cur.Labels)}
	if cur.Group != "" {
		target["group"] = cur.Group
	}
	out, _ := MergePatch(target, patch).(map[string]any)
	var (
		doc    Document
		fields []FieldError
	)
	if cur.Secret != "" {
		secret := cur.Secret
		doc.Secret = &secret
	}
	fields = append(fields, patchedString(out, "cloud", &doc.Cloud)...)
	fields = append(fields, patchedString(out, "group", &doc.Group)...)
	var f []FieldError
	doc.Params, doc.Labels, f = patchedParamsLabels(out)
	fields = append(fields, f...)
	if len(fields) > 0 {
		return Document{}, invalid(fields...)
	}
	return doc, nil
}

// patchedString sets *dst to member name of a patched document, "" when
// it is absent.
func patchedString(doc map[string]any, name string, dst *string) []FieldError {
	v, ok := doc[name]
	if !ok {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return []FieldError{{Field: name, Reason: "must be a string"}}
	}
	*dst = s
	return nil
}

// patchedObject returns member name of a patched document, an object whose
// members valid accepts.
func patchedObject(doc map[string]any, name string, valid func(any) bool) (map[string]any, []FieldError) {
	v, ok := doc[name]
	if !ok {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, []FieldError{{Field: name, Reason: "must be an object"}}
	}
	var fields []FieldError
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !valid(m[k]) {
			fields = append(fields, FieldError{Field: name + "." + clip(k), Reason: "has the wrong type"})
		}
	}
	return m, fields
}

func anyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	maps.Copy(out, m)
	return out
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// PatchGroup applies a JSON Merge Patch (RFC 7396) to group id's document,
// whose members are cloud, params, labels and registration, and stores the
// result after the checks of PutGroup; the group secret stays as stored (a
// patch naming it is refused). The write is a compare-and-set on the
// version read; a group that changed in between is patched again (up to
// patchRetries times).
//
// Cost: one store read and one compare-and-set write (a Vault store reads
// the version again before writing).
func (s *Service) PatchGroup(ctx context.Context, caller Principal, id string, patch map[string]any) (secrets.Group, error) {
	if fields := patchMembers(patch, "cloud", "params", "labels", "registration"); len(fields) > 0 {
		return secrets.Group{}, invalid(fields...)
	}
	for attempt := 0; ; attempt++ {
		cur, err := toChange(ctx, s.store.GetGroup, "group", id, caller.Scope.HasGroup, nil)
		if err != nil {
			return secrets.Group{}, err
		}
		doc, err := patchedGroup(cur, patch)
		if err != nil {
			return secrets.Group{}, err
		}
		if err := checkGroupLanding(caller, id, doc.Labels); err != nil {
			return secrets.Group{}, err
		}
		g, err := s.checkGroup(id, doc)
		if err != nil {
			return secrets.Group{}, err
		}
		if !maps.Equal(identityTemplate(cur), identityTemplate(g)) {
			return secrets.Group{}, newError(CodeConflict, "the params of the template that contain "+DeviceIDPlaceholder+
				" make each device's identity at the cloud and cannot change while the group exists; make a new group")
		}
		stored, err := s.store.PutGroup(ctx, g, cur.Version)
		s.cache.forgetGroup(id)
		switch {
		case (errors.Is(err, secrets.ErrConflict) || errors.Is(err, secrets.ErrNotFound)) && attempt < patchRetries:
			continue
		case errors.Is(err, secrets.ErrConflict):
			return secrets.Group{}, newError(CodeConflict, "the group changed while it was being written; read it and retry")
		case err != nil:
			return secrets.Group{}, fmt.Errorf("storing group: %w", err)
		}
		audit(ctx, caller, "group.patched").Str("group", stored.ID).Str("cloud", stored.Cloud).
			Int64("version", stored.Version).Strs("members", slices.Sorted(maps.Keys(patch))).Msg("audit")
		stored.Secret = ""
		return stored, nil
	}
}

// patchedGroup applies patch to cur's document and returns the result with
// cur's secret.
func patchedGroup(cur secrets.Group, patch map[string]any) (GroupDocument, error) {
	target := map[string]any{"cloud": cur.Cloud, "params": anyMap(cur.Params), "labels": stringMap(cur.Labels)}
	if r := cur.Registration; r != nil {
		reg := map[string]any{"kind": r.Kind}
		if len(r.Params) > 0 {
			reg["params"] = stringMap(r.Params)
		}
		target["registration"] = reg
	}
	out, _ := MergePatch(target, patch).(map[string]any)
	doc := GroupDocument{Secret: cur.Secret}
	var fields []FieldError
	fields = append(fields, patchedString(out, "cloud", &doc.Cloud)...)
	var f []FieldError
	doc.Params, doc.Labels, f = patchedParamsLabels(out)
	fields = append(fields, f...)
	if reg, ok := out["registration"]; ok {
		r, _ := reg.(map[string]any)
		doc.Registration = &secrets.Registration{}
		if f := patchedString(r, "kind", &doc.Registration.Kind); r == nil || len(f) > 0 {
			fields = append(fields, FieldError{Field: "registration.kind", Reason: "must be a string"})
		}
		params, f := patchedObject(r, "params", func(v any) bool { _, ok := v.(string); return ok })
		for _, e := range f {
			e.Field = "registration." + e.Field
			fields = append(fields, e)
		}
		if len(params) > 0 {
			doc.Registration.Params = make(map[string]string, len(params))
			for k, v := range params {
				doc.Registration.Params[k] = v.(string)
			}
		}
	}
	if len(fields) > 0 {
		return GroupDocument{}, invalid(fields...)
	}
	return doc, nil
}

// patchedParamsLabels reads the params and labels of a patched device or
// group document (out), naming each member of the wrong type.
func patchedParamsLabels(out map[string]any) (map[string]any, map[string]string, []FieldError) {
	params, fields := patchedObject(out, "params", func(v any) bool {
		switch v.(type) {
		case string, float64, bool, map[string]any:
			return true
		}
		return false
	})
	raw, f := patchedObject(out, "labels", func(v any) bool { _, ok := v.(string); return ok })
	fields = append(fields, f...)
	var labels map[string]string
	if len(raw) > 0 {
		labels = make(map[string]string, len(raw))
		for k, v := range raw {
			labels[k] = v.(string)
		}
	}
	return params, labels, fields
}
