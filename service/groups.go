package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/secrets"
)

// registrationMismatch says why registration r cannot register devices of
// cloud cloudName, "" when it can (or when its kind is unknown).
func (s *Service) registrationMismatch(cloudName string, r *secrets.Registration) string {
	k, ok := s.clouds.RegistrationKinds()[r.Kind]
	if !ok || k.Cloud == cloudName {
		return ""
	}
	return fmt.Sprintf("%s registers %s devices, but the group's cloud is %s", r.Kind, k.Cloud, clip(cloudName))
}

// DeviceIDPlaceholder is replaced by the device's ID in the string values
// of a group's params template.
const DeviceIDPlaceholder = "{deviceId}"

// RegistrationRequest asks a Registrar to register one device of a group
// with its cloud.
type RegistrationRequest struct {
	// Kind is the group's Registration.Kind, one of the registry's
	// (cloud.Registry.RegistrationKinds).
	Kind string
	// Params are the group's Registration.Params.
	Params map[string]string
	// GroupSecret is the group key or product secret. It must not appear
	// in any error, log line or request other than the cloud's.
	GroupSecret string
	// DeviceID is the ID of the device to register.
	DeviceID string
}

// RegistrationResult is what the cloud's registration gave.
type RegistrationResult struct {
	// Params are merged over the device's params (the group's template and
	// the caller's own): the assigned hub, the cloud's device name.
	Params map[string]any
	// Secret is the device secret the cloud returned, stored with the
	// device; "" means none (when the cloud derives keys,
	// cloud.GroupKeyDeriver, the device's key is then derived from the
	// group key when it signs).
	Secret string
}

// Registrar registers a new device of a group with its cloud, at enrolment
// and when a device of a group that has a Registration is written without
// a secret. Errors wrap ErrCloudRefused when the cloud answered with a
// refusal, ErrCloudUnreachable when it could not be reached, and
// ErrRegistrationInvalid when the group's settings cannot work; only those
// errors' details reach the client, and no error may hold the group secret.
type Registrar interface {
	Register(ctx context.Context, req RegistrationRequest) (RegistrationResult, error)
}

// RegistrationChecker is an optional interface of a Registrar: when the
// Registrar implements it, a group's registration is checked when the group
// is written (422 naming each field) rather than failing its first
// enrolment.
type RegistrationChecker interface {
	// CheckRegistration says what is wrong with a registration's kind and
	// params and the group secret, as fields "kind", "params.NAME" and
	// "secret"; reasons never quote the secret.
	CheckRegistration(kind string, params map[string]string, groupSecret string) []FieldError
}

// GroupDocument is a group as a caller sends it.
type GroupDocument struct {
	Cloud  string
	Params map[string]any
	// Secret is write-only: nothing the service returns or logs holds it.
	Secret       string
	Labels       map[string]string
	Registration *secrets.Registration
	// RequireKey refuses the bearer tokens of the group's devices, and
	// enrolments without a key: proofs of possession only.
	RequireKey bool
	// RequireAttestation is "tpm" (enrolments need TPM attestation) or "".
	RequireAttestation string
}

// sampleDeviceID stands for a device when a group's template is checked.
const sampleDeviceID = "credsign-group-check"

// PutGroup validates doc and stores it as group id, creating it or
// replacing it. The template is checked as a device of the group would
// be, with a trial signature (with a key derived from the group key when
// the cloud derives keys). created reports whether the group is new.
//
// A replace must keep the template's params that contain the device ID
// placeholder as they are (CodeConflict otherwise): they make each device's
// identity at the cloud, and a new recipe could give a new device the
// identity an existing device got from the old one ("{deviceId}" then
// "x-{deviceId}": device "x-a" of the first and "a" of the second).
//
// Cost: one store read, one compare-and-set write (a Vault store reads the
// version first).
func (s *Service) PutGroup(ctx context.Context, caller Principal, id string, doc GroupDocument) (secrets.Group, bool, error) {
	if err := checkGroupLanding(caller, id, doc.Labels); err != nil {
		return secrets.Group{}, false, err
	}
	g, err := s.checkGroup(id, doc)
	if err != nil {
		return secrets.Group{}, false, err
	}
	ifVersion := int64(0)
	cur, err := s.store.GetGroup(ctx, id)
	switch {
	case err == nil && !caller.Scope.HasGroup(cur):
		return secrets.Group{}, false, errOutsideScope
	case err == nil:
		if !maps.Equal(identityTemplate(cur), identityTemplate(g)) {
			return secrets.Group{}, false, newError(CodeConflict, "the params of the template that contain "+DeviceIDPlaceholder+
				" make each device's identity at the cloud and cannot change while the group exists; make a new group")
		}
		ifVersion = cur.Version
	case !errors.Is(err, secrets.ErrNotFound):
		return secrets.Group{}, false, fmt.Errorf("reading group: %w", err)
	}
	stored, err := s.store.PutGroup(ctx, g, ifVersion)
	s.cache.forgetGroup(id)
	switch {
	case errors.Is(err, secrets.ErrConflict):
		return secrets.Group{}, false, newError(CodeConflict, "the group changed while it was being written; read it and retry")
	case err != nil:
		return secrets.Group{}, false, fmt.Errorf("storing group: %w", err)
	}
	ev := audit(ctx, caller, "group.put").Str("group", stored.ID).Str("cloud", stored.Cloud).Int64("version", stored.Version)
	if stored.Registration != nil {
		ev = ev.Str("registration", stored.Registration.Kind)
	}
	ev.Msg("audit")
	stored.Secret = ""
	return stored, stored.Version == 1, nil
}

// checkGroup validates a group document and returns the record to store.
func (s *Service) checkGroup(id string, doc GroupDocument) (secrets.Group, error) {
	cl, known := s.clouds.LookupCloud(doc.Cloud)
	secret := doc.Secret
	fields := controlFields(Document{Params: doc.Params, Secret: &secret, Labels: doc.Labels}, known && cl.SecretFormat == cloud.SecretPEM)
	if !known {
		return secrets.Group{}, invalid(append(fields, FieldError{Field: "cloud", Reason: "unknown cloud (see GET /v1/clouds)"})...)
	}
	if doc.Secret == "" {
		fields = append(fields, FieldError{Field: "secret", Reason: "required"})
	}
	if r := doc.Registration; r != nil {
		// The registration kinds a group may name are its clouds'; the
		// Registrar given in Config performs them.
		if _, ok := s.clouds.RegistrationKinds()[r.Kind]; !ok {
			fields = append(fields, FieldError{Field: "registration.kind", Reason: "unknown registration kind"})
		} else if why := s.registrationMismatch(doc.Cloud, r); why != "" {
			fields = append(fields, FieldError{Field: "registration.kind", Reason: why})
		}
		if s.registrar == nil {
			fields = append(fields, FieldError{Field: "registration", Reason: "this server has no registrar configured"})
		}
		if rc, ok := s.registrar.(RegistrationChecker); ok && !hasControl(doc.Secret) {
			for _, f := range rc.CheckRegistration(r.Kind, r.Params, doc.Secret) {
				switch {
				case f.Field == "kind":
					continue // said above
				case f.Field == "secret":
					if slices.ContainsFunc(fields, func(e FieldError) bool { return e.Field == "secret" }) {
						continue
					}
				default:
					f.Field = "registration." + f.Field
				}
				fields = append(fields, f)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(r.Params)) {
			if hasControl(r.Params[k]) {
				fields = append(fields, FieldError{Field: "registration.params." + clip(k), Reason: "must not contain control characters"})
			}
		}
	}
	// A cloud that derives its devices' keys from the group key checks
	// that key now, as it would a device's.
	if s.derivesKeys(doc.Cloud) && doc.Secret != "" && !hasControl(doc.Secret) {
		if err := s.clouds.ValidateSecret(doc.Cloud, doc.Secret); err != nil {
			fields = append(fields, InvalidFields(err)...)
		}
	}
	if doc.RequireAttestation != "" && doc.RequireAttestation != AttestationTPM {
		fields = append(fields, FieldError{Field: "requireAttestation", Reason: `must be "tpm" or absent`})
	}
	if len(fields) > 0 {
		return secrets.Group{}, invalid(fields...)
	}
	g := secrets.Group{ID: id, Cloud: doc.Cloud, Params: doc.Params, Secret: doc.Secret, Labels: doc.Labels, Registration: doc.Registration,
		RequireKey: doc.RequireKey, RequireAttestation: doc.RequireAttestation}
	if deriver, ok := s.clouds.GroupKeyDeriver(doc.Cloud); ok && doc.Registration == nil {
		if f := distinctKeys(g, deriver); len(f) > 0 {
			return secrets.Group{}, invalid(f...)
		}
	}
	if doc.Registration == nil {
		// Check the template as a device of the group is checked; with a
		// registration, the cloud fills in what the template leaves out.
		if _, err := s.checkDocument(sampleDeviceID, Document{Group: id, Labels: doc.Labels}, &g); err != nil {
			var se *Error
			if errors.As(err, &se) && se.Code == CodeInvalid {
				return secrets.Group{}, invalid(groupFields(se.Fields)...)
			}
			return secrets.Group{}, err
		}
	}
	return g, nil
}

// groupFields renames the fields of a device check of the template to
// what the group document calls them.
func groupFields(fields []FieldError) []FieldError {
	out := make([]FieldError, len(fields))
	for i, f := range fields {
		if f.Field == "secret" && f.Reason == "required" {
			f.Reason = "required: the group's cloud does not derive device keys, so its devices need a secret of their own or a registration"
		}
		out[i] = f
	}
	return out
}

// GetGroup returns group id without its secret.
func (s *Service) GetGroup(ctx context.Context, id string) (secrets.Group, error) {
	g, err := s.store.GetGroup(ctx, id)
	if err != nil {
		return secrets.Group{}, fmt.Errorf("reading group: %w", err)
	}
	g.Secret = ""
	return g, nil
}

// DeleteGroup deletes group id and its secret. Its devices stay; those
// without a secret of their own get no credentials until a group of that
// ID exists again.
func (s *Service) DeleteGroup(ctx context.Context, caller Principal, id string) error {
	err := s.store.DeleteGroup(ctx, id)
	s.cache.forgetGroup(id)
	if err != nil {
		return fmt.Errorf("deleting group: %w", err)
	}
	audit(ctx, caller, "group.deleted").Str("group", id).Msg("audit")
	return nil
}

// ListGroups returns a page of groups (without secrets) sorted by ID and
// the cursor of the next page, "" on the last one. A scoped caller sees
// only the groups inside its scope (listScopedGroups).
func (s *Service) ListGroups(ctx context.Context, caller Principal, after string, limit int) ([]secrets.Group, string, error) {
	if caller.Scope != nil {
		return s.listScopedGroups(ctx, caller.Scope, after, limit)
	}
	p, err := s.store.ListGroups(ctx, after, limit)
	if err != nil {
		return nil, "", fmt.Errorf("listing groups: %w", err)
	}
	for i := range p.Groups {
		p.Groups[i].Secret = ""
	}
	return p.Groups, p.Next, nil
}

// templateParams returns the params of device id of group g: the group's
// template with DeviceIDPlaceholder replaced in string values, then the
// device's own params over it.
func templateParams(g secrets.Group, id string, own map[string]any) map[string]any {
	out := make(map[string]any, len(g.Params)+len(own))
	for k, v := range g.Params {
		if str, ok := v.(string); ok {
			v = strings.ReplaceAll(str, DeviceIDPlaceholder, id)
		}
		out[k] = v
	}
	maps.Copy(out, own)
	return out
}

// identityFields refuses the params a caller gives device id of group g
// (own) that would replace a param the group's template derives from the
// device's ID with another value. Those params are the device's identity
// at the cloud (its device name, its registration ID, hence its
// derived key); were a device free to set them, it could take the identity
// of another device of the group (a device "site1.lamp-050" naming itself
// "lamp-050" at the cloud, then "lamp-050" enrolling), and two devices of a
// group would sign as one. A template string with the placeholder maps
// distinct IDs to distinct values (the ID is spliced between fixed text),
// so within a group a device's identity is taken exactly when its ID is:
// the store's create-only write already refuses that, and the check costs
// no store round trip at any number of devices.
func identityFields(g secrets.Group, id string, own map[string]any) []FieldError {
	var fields []FieldError
	for _, k := range slices.Sorted(maps.Keys(own)) {
		tmpl, ok := g.Params[k].(string)
		if !ok || !strings.Contains(tmpl, DeviceIDPlaceholder) {
			continue
		}
		if v, ok := own[k].(string); ok && v == strings.ReplaceAll(tmpl, DeviceIDPlaceholder, id) {
			continue // the value the template gives (a device read and written back)
		}
		fields = append(fields, FieldError{Field: "params." + clip(k),
			Reason: "the group's template derives it from the device ID (" + DeviceIDPlaceholder + "); a device of the group must not set it to another value, which could be another device's identity at the cloud"})
	}
	return fields
}

// identityTemplate returns the params of g's template whose value contains
// the device ID placeholder (see identityFields).
func identityTemplate(g secrets.Group) map[string]string {
	out := map[string]string{}
	for k, v := range g.Params {
		if str, ok := v.(string); ok && strings.Contains(str, DeviceIDPlaceholder) {
			out[k] = str
		}
	}
	return out
}

// distinctKeys checks that the template of group g, whose devices derive
// their keys from the group key with deriver, gives two devices two keys:
// else every device of the group signs as one.
func distinctKeys(g secrets.Group, deriver cloud.GroupKeyDeriver) []FieldError {
	a, errA := deriver.DeriveDeviceKey(g.Secret, sampleDeviceID, templateParams(g, sampleDeviceID, nil))
	b, errB := deriver.DeriveDeviceKey(g.Secret, sampleDeviceID+"-2", templateParams(g, sampleDeviceID+"-2", nil))
	if errA != nil || errB != nil || a != b {
		return nil // a key that cannot be derived is the secret's check's to report
	}
	return []FieldError{{Field: "params." + deriver.DeviceIDParam(), Reason: "must contain " + DeviceIDPlaceholder + ": device keys are derived from it, and with one value every device of the group would have the same key"}}
}

// deviceSecret returns the secret device d signs with: its own, or for a
// device without one of a group whose cloud derives keys
// (cloud.GroupKeyDeriver), the key derived from the group key. A cold call for such a device costs one store read (the group).
func (s *Service) deviceSecret(ctx context.Context, d secrets.Device) (string, error) {
	return s.deviceSecretFrom(ctx, d, s.cache.group)
}

// deviceSecretFrom is deviceSecret with the group read by getGroup.
func (s *Service) deviceSecretFrom(ctx context.Context, d secrets.Device, getGroup func(context.Context, string) (secrets.Group, error)) (string, error) {
	if d.Secret != "" || d.Group == "" {
		return d.Secret, nil
	}
	g, err := getGroup(ctx, d.Group)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return "", newError(CodeConflict, "the device has no secret of its own and its group no longer exists")
	case err != nil:
		return "", fmt.Errorf("reading the device's group: %w", err)
	}
	return s.groupSecret(g, d)
}

// groupDocument reads group doc.Group for a device document and, when the
// group registers its devices and the document brings no secret, registers
// device id with the cloud: the result's params go over the document's,
// its secret becomes the device's. A group that does not exist is a fault
// of the document.
func (s *Service) groupDocument(ctx context.Context, sc *secrets.Scope, id string, doc Document) (Document, *secrets.Group, error) {
	g, err := s.readGroup(ctx, sc, doc.Group)
	if err != nil {
		return doc, nil, err
	}
	if f := identityFields(g, id, doc.Params); len(f) > 0 {
		return doc, nil, invalid(f...)
	}
	doc, err = s.register(ctx, g, id, doc)
	return doc, &g, err
}

// readGroup reads the group a device document names, from the store; a
// group outside scope sc is a group that does not exist.
func (s *Service) readGroup(ctx context.Context, sc *secrets.Scope, id string) (secrets.Group, error) {
	g, err := s.store.GetGroup(ctx, id)
	if err == nil && !sc.HasGroup(g) {
		err = secrets.ErrNotFound
	}
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return g, invalid(FieldError{Field: "group", Reason: "no such group"})
	case errors.Is(err, secrets.ErrInvalid):
		return g, invalid(FieldError{Field: "group", Reason: "not a valid group ID"})
	case err != nil:
		return g, fmt.Errorf("reading the device's group: %w", err)
	}
	return g, nil
}

// register registers device id of group g with the cloud when the group
// says so and doc brings no secret of its own.
func (s *Service) register(ctx context.Context, g secrets.Group, id string, doc Document) (Document, error) {
	if g.Registration == nil || doc.Secret != nil {
		return doc, nil
	}
	if s.registrar == nil {
		return doc, newError(CodeConflict, "the group registers its devices with the cloud, but this server has no registrar")
	}
	if why := s.registrationMismatch(g.Cloud, g.Registration); why != "" {
		// A group stored before this was checked: nothing is sent.
		return doc, newError(CodeConflict, "the group's registration cannot register its devices ("+why+"); fix the group")
	}
	res, err := s.registrar.Register(ctx, RegistrationRequest{
		Kind: g.Registration.Kind, Params: maps.Clone(g.Registration.Params), GroupSecret: g.Secret, DeviceID: id,
	})
	if err != nil {
		// The client learns only the kind of failure; the cause, which
		// the Registrar keeps free of secrets, goes to the log.
		zerolog.Ctx(ctx).Warn().Err(err).Str("group", g.ID).Str("deviceId", id).Str("registration", g.Registration.Kind).
			Msg("registration with the cloud failed")
		return doc, fmt.Errorf("registering device %q (%s): %w", id, g.Registration.Kind, err)
	}
	params := maps.Clone(doc.Params)
	if params == nil {
		params = map[string]any{}
	}
	maps.Copy(params, res.Params)
	doc.Params = params
	if res.Secret != "" {
		doc.Secret = &res.Secret
	}
	return doc, nil
}

// groupSecret derives the key of device d of group g.
func (s *Service) groupSecret(g secrets.Group, d secrets.Device) (string, error) {
	deriver, derives := s.clouds.GroupKeyDeriver(g.Cloud)
	if !derives || d.Cloud != g.Cloud {
		return "", newError(CodeConflict, "the device has no secret of its own and its group's cloud does not derive one (register it, or give it a secret)")
	}
	key, err := deriver.DeriveDeviceKey(g.Secret, d.ID, d.Params)
	if err != nil {
		return "", fmt.Errorf("deriving the device key from the group key: %w", err)
	}
	return key, nil
}

// derivesKeys reports whether the named cloud derives its devices' keys
// from their group's key (cloud.GroupKeyDeriver).
func (s *Service) derivesKeys(cloud string) bool {
	_, ok := s.clouds.GroupKeyDeriver(cloud)
	return ok
}
