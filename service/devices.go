package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/secrets"
)

// Document is a device document as a caller sends it.
type Document struct {
	Cloud  string
	Params map[string]any
	// Secret is write-only: nothing the service returns or logs holds it.
	Secret *string
	Labels map[string]string
	// Group names the device's group, "" for none. The group gives the
	// cloud and the params template; the secret may then be left out.
	Group string
	// RequireKey refuses the device's bearer tokens: proofs of possession
	// only. The device's keys are not part of the document: a write keeps
	// them (see AddDeviceKey).
	RequireKey bool
}

// Precondition is a caller's condition on the current device for a write.
type Precondition struct {
	// MustNotExist makes the write a create (If-None-Match: *).
	MustNotExist bool
	// Match, when set, must accept the current device (If-Match); the
	// write then applies only to the version it accepted.
	Match func(secrets.Device) bool
}

var validLabelKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

// PutDevice validates doc against its cloud's recipe (including a trial
// signature) and stores it as device id, creating it or replacing it as
// cond allows. created reports whether the device is new. A document with
// several faults is refused naming every faulty field.
//
// A device of a group (doc.Group) takes its cloud and params template
// from the group; without a secret of its own it is registered with the
// cloud when the group says so, else, when its cloud derives keys
// (cloud.GroupKeyDeriver), its key is derived from the group key whenever
// it signs.
//
// A scoped caller (whose gate checked that the device is inside its scope
// or absent) may not write a device outside its scope: the fields that
// would put it there are named (CodeInvalid) before anything is read, and
// a group outside the scope is a group that does not exist; a device that
// is outside it when read is absent to that caller.
//
// Cost: one store read and one write (the read keeps the device's keys;
// none for a create with cond.MustNotExist); with a group one read of the
// group.
func (s *Service) PutDevice(ctx context.Context, caller Principal, id string, doc Document, cond Precondition) (d secrets.Device, created bool, err error) {
	if err := checkLanding(caller, doc.Group, doc.Labels); err != nil {
		return secrets.Device{}, false, err
	}
	var g *secrets.Group
	if doc.Group != "" {
		if doc, g, err = s.groupDocument(ctx, caller.Scope, id, doc); err != nil {
			return secrets.Device{}, false, err
		}
	}
	d, err = s.checkDocument(id, doc, g)
	if err != nil {
		return secrets.Device{}, false, err
	}
	d.RequireKey = doc.RequireKey
	if !cond.MustNotExist && cond.Match == nil {
		return s.replaceDevice(ctx, caller, d)
	}
	ifVersion := int64(-1)
	switch {
	case cond.MustNotExist:
		ifVersion = 0
	case cond.Match != nil:
		// Compare the whole condition with the current device, then let
		// the store compare-and-set its version: a device deleted and
		// created again in between would have to reach the same version to
		// slip through.
		cur, err := s.store.GetDevice(ctx, id)
		switch {
		case errors.Is(err, secrets.ErrNotFound):
			return secrets.Device{}, false, newError(CodePrecondition, "the device does not exist")
		case err != nil:
			return secrets.Device{}, false, fmt.Errorf("reading device for If-Match: %w", err)
		case !caller.Scope.HasDevice(cur):
			return secrets.Device{}, false, errOutsideScope
		case !cond.Match(cur):
			return secrets.Device{}, false, errChanged
		}
		ifVersion = cur.Version
		d.Keys = cur.Keys
	}
	stored, err := s.store.PutDevice(ctx, d, ifVersion)
	s.cache.forgetDevice(id) // even on error: the write may have landed
	switch {
	case errors.Is(err, secrets.ErrConflict) && ifVersion == 0 && cond.MustNotExist:
		return secrets.Device{}, false, newError(CodeConflict, "the device already exists")
	case (errors.Is(err, secrets.ErrConflict) || errors.Is(err, secrets.ErrNotFound)) && ifVersion >= 0:
		return secrets.Device{}, false, errChanged
	case err != nil:
		return secrets.Device{}, false, fmt.Errorf("storing device: %w", err)
	}
	auditPut(ctx, caller, stored)
	return stored, stored.Version == 1, nil
}

func auditPut(ctx context.Context, caller Principal, stored secrets.Device) {
	ev := audit(ctx, caller, "device.put").Str("deviceId", stored.ID).Str("cloud", stored.Cloud).Int64("version", stored.Version)
	if stored.Group != "" {
		ev = ev.Str("group", stored.Group)
	}
	ev.Msg("audit")
}

// replaceDevice writes d unconditionally, keeping the keys bound to the
// device it replaces: it reads the current record and writes under
// compare-and-set on its version, read again after losing a race.
func (s *Service) replaceDevice(ctx context.Context, caller Principal, d secrets.Device) (secrets.Device, bool, error) {
	for attempt := range casAttempts {
		if attempt > 0 {
			backoff(ctx, attempt)
		}
		cur, err := s.store.GetDevice(ctx, d.ID)
		switch {
		case errors.Is(err, secrets.ErrNotFound):
			cur = secrets.Device{}
		case err != nil:
			return secrets.Device{}, false, fmt.Errorf("reading device: %w", err)
		case !caller.Scope.HasDevice(cur):
			return secrets.Device{}, false, errOutsideScope
		}
		d.Keys = cur.Keys
		stored, err := s.store.PutDevice(ctx, d, cur.Version)
		s.cache.forgetDevice(d.ID) // even on error: the write may have landed
		switch {
		case errors.Is(err, secrets.ErrConflict), errors.Is(err, secrets.ErrNotFound):
			continue
		case err != nil:
			return secrets.Device{}, false, fmt.Errorf("storing device: %w", err)
		}
		auditPut(ctx, caller, stored)
		return stored, stored.Version == 1, nil
	}
	return secrets.Device{}, false, fmt.Errorf("replacing a device: %w", errBusy)
}

var errChanged = newError(CodePrecondition, "the device changed; read it again and retry")

// checkDocument validates a device document and returns the record to
// store. It names every faulty field, not only the first. g is the
// device's group (doc.Group), nil for none: it gives the cloud and the
// params template, and a device without a secret of its own of a group
// whose cloud derives keys is checked with the key derived from the group
// key.
func (s *Service) checkDocument(id string, doc Document, g *secrets.Group) (secrets.Device, error) {
	var groupFault []FieldError
	if g != nil {
		switch {
		case doc.Cloud == "":
			doc.Cloud = g.Cloud
		case doc.Cloud != g.Cloud:
			groupFault = append(groupFault, FieldError{Field: "cloud", Reason: "differs from the cloud of the device's group"})
		}
		doc.Params = templateParams(*g, id, doc.Params)
	}
	cl, known := s.clouds.LookupCloud(doc.Cloud)
	fields := append(controlFields(doc, known && cl.SecretFormat == cloud.SecretPEM), groupFault...)
	switch {
	case doc.Cloud == "" && g == nil:
		return secrets.Device{}, invalid(append(fields, FieldError{Field: "cloud", Reason: "required"})...)
	case !known:
		return secrets.Device{}, invalid(append(fields, FieldError{Field: "cloud", Reason: "unknown cloud (see GET /v1/clouds)"})...)
	}
	bad := func(f string) bool {
		return slices.ContainsFunc(fields, func(e FieldError) bool { return e.Field == f })
	}
	params, err := s.clouds.NormalizeParams(doc.Cloud, doc.Params)
	paramFaults := InvalidFields(err)
	if err != nil && len(paramFaults) == 0 {
		return secrets.Device{}, fmt.Errorf("checking params: %w", err)
	}
	for _, f := range paramFaults {
		if !bad(f.Field) {
			fields = append(fields, f)
		}
	}
	secret, trialSecret := "", ""
	switch {
	case doc.Secret != nil:
		secret = *doc.Secret
		trialSecret = secret
		if !bad("secret") {
			if err := s.clouds.ValidateSecret(doc.Cloud, secret); err != nil {
				fields = append(fields, InvalidFields(err)...)
			}
		}
	case cl.SecretFormat == cloud.SecretNone:
	case g != nil && doc.Cloud == g.Cloud && s.derivesKeys(g.Cloud):
		key, err := s.groupSecret(*g, secrets.Device{ID: id, Cloud: doc.Cloud, Params: params})
		if err != nil {
			return secrets.Device{}, err
		}
		trialSecret = key
	default:
		fields = append(fields, FieldError{Field: "secret", Reason: "required"})
	}
	labels := make(map[string]string, len(doc.Labels))
	for _, k := range slices.Sorted(maps.Keys(doc.Labels)) {
		if !validLabelKey.MatchString(k) {
			fields = append(fields, FieldError{Field: "labels",
				Reason: "label keys are 1 to 63 letters, digits, '.', '_', '/', '-', starting with a letter or digit"})
			continue
		}
		labels[k] = doc.Labels[k]
	}
	if len(fields) > 0 {
		return secrets.Device{}, invalid(fields...)
	}
	err = s.clouds.Validate(cloud.Request{Cloud: doc.Cloud, DeviceID: id, Params: params, Secret: trialSecret, Now: s.now()})
	if err != nil {
		if f := InvalidFields(err); len(f) > 0 {
			return secrets.Device{}, invalid(f...)
		}
		return secrets.Device{}, fmt.Errorf("trial signature: %w", err)
	}
	d := secrets.Device{ID: id, Cloud: doc.Cloud, Params: params, Secret: secret, Labels: labels}
	if g != nil {
		d.Group = g.ID
	}
	return d, nil
}

// clip shortens a caller's name for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// controlFields names the text fields of a device document (secret, string
// params, labels) that hold control characters. None of the clouds' secrets
// or identifiers has any; a trailing newline from a file or a stray NUL
// would otherwise be stored and signed with, and MQTT forbids NUL in the
// ClientId, Username and Password.
//
// A PEM secret (pemSecret: a PEM private key, as the token family's) is lines of text: its line
// breaks are allowed, no other control character is.
func controlFields(doc Document, pemSecret bool) []FieldError {
	const reason = "must not contain control characters (a trailing newline?)"
	var fields []FieldError
	secret := ""
	if doc.Secret != nil {
		secret = *doc.Secret
		if pemSecret {
			secret = strings.NewReplacer("\r\n", "", "\n", "").Replace(secret)
		}
	}
	if doc.Secret != nil && hasControl(secret) {
		fields = append(fields, FieldError{Field: "secret", Reason: reason})
	}
	for _, k := range slices.Sorted(maps.Keys(doc.Params)) {
		if v, ok := doc.Params[k].(string); ok && hasControl(v) {
			fields = append(fields, FieldError{Field: "params." + clip(k), Reason: reason})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(doc.Labels)) {
		if hasControl(doc.Labels[k]) {
			fields = append(fields, FieldError{Field: "labels." + clip(k), Reason: reason})
		}
	}
	return fields
}

// hasControl reports whether s holds a Unicode control character.
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// GetDevice returns device id without its secret.
func (s *Service) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		return secrets.Device{}, fmt.Errorf("reading device: %w", err)
	}
	return withoutSecrets(d), nil
}

// DeleteDevice deletes device id. Its device tokens stop working at once
// (they name a device that does not exist, 404) and stay dead if a device
// of the same id is created later (they are older than it, 403).
func (s *Service) DeleteDevice(ctx context.Context, caller Principal, id string) error {
	err := s.store.DeleteDevice(ctx, id)
	s.cache.forgetDevice(id)
	if err != nil {
		return fmt.Errorf("deleting device: %w", err)
	}
	audit(ctx, caller, "device.deleted").Str("deviceId", id).Msg("audit")
	return nil
}

// ListQuery selects devices.
type ListQuery struct {
	// Cloud, when set, keeps only that cloud's devices.
	Cloud string
	// Group, when set, keeps only that group's devices.
	Group string
	// Labels keeps devices that have every label with the value given.
	Labels map[string]string
	// After is the cursor of a previous page.
	After string
	// Limit is the page size (1 to 1000; 0 means 100).
	Limit int
	// Scope, when set, keeps only the devices inside it (the caller's
	// scope): one more filter, applied with the others.
	Scope *secrets.Scope
}

// DevicePage is one page of a device listing.
type DevicePage struct {
	// Devices are sorted by ID, without their secrets.
	Devices []secrets.Device
	// Next is the cursor of the following page, "" on the last one.
	Next string
	// Scanned is how many device records the store examined.
	Scanned int
	// Partial reports that the store spent its scan budget (the
	// filestore's or the vaultstore's ScanBudget) before the page was full:
	// the page may be short, even empty, and Next goes on from the last
	// record examined.
	Partial bool
}

// ListDevices returns one page of devices (without secrets) sorted by ID.
// The store applies the filters as it scans, in one call: a page is short
// only at the end of the listing, or when the store's scan budget ran out
// (Partial).
//
// Cost: one store listing call (see the stores' ListDevices).
func (s *Service) ListDevices(ctx context.Context, q ListQuery) (DevicePage, error) {
	limit := q.Limit
	limit = secrets.PageLimit(limit)
	page, err := s.store.ListDevices(ctx, secrets.ListOptions{Limit: limit, Cloud: q.Cloud, Group: q.Group, Labels: q.Labels, Scope: q.Scope, After: q.After})
	if err != nil {
		return DevicePage{}, fmt.Errorf("listing devices: %w", err)
	}
	for i := range page.Devices {
		page.Devices[i] = withoutSecrets(page.Devices[i])
	}
	if page.Devices == nil {
		page.Devices = []secrets.Device{}
	}
	return DevicePage{Devices: page.Devices, Next: page.Next, Scanned: page.Scanned, Partial: page.Partial}, nil
}
