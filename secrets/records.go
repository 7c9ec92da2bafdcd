package secrets

import (
	"encoding/json"
	"fmt"
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
	in := Device{ID: d.ID, Cloud: d.Cloud, Params: d.Params, Secret: d.Secret, Labels: d.Labels, Group: d.Group}
	b, err := json.Marshal(in)
	if err != nil {
		return Device{}, fmt.Errorf("%w: params or labels cannot be encoded as JSON", ErrInvalid)
	}
	defer clear(b)
	var out Device
	if err := json.Unmarshal(b, &out); err != nil {
		return Device{}, fmt.Errorf("%w: params or labels cannot be decoded", ErrInvalid)
	}
	if len(out.Params) == 0 {
		out.Params = nil
	}
	if len(out.Labels) == 0 {
		out.Labels = nil
	}
	return out, nil
}

// NormalizeGroup is NormalizeDevice for a group: the fields a caller writes
// (ID, Cloud, Params, Secret, Labels, Registration) as every store reads
// them back, sharing nothing with g, without bookkeeping.
func NormalizeGroup(g Group) (Group, error) {
	in := Group{ID: g.ID, Cloud: g.Cloud, Params: g.Params, Secret: g.Secret, Labels: g.Labels, Registration: g.Registration,
		RequireAttestation: g.RequireAttestation}
	b, err := json.Marshal(in)
	if err != nil {
		return Group{}, fmt.Errorf("%w: params or labels cannot be encoded as JSON", ErrInvalid)
	}
	defer clear(b)
	var out Group
	if err := json.Unmarshal(b, &out); err != nil {
		return Group{}, fmt.Errorf("%w: params or labels cannot be decoded", ErrInvalid)
	}
	if len(out.Params) == 0 {
		out.Params = nil
	}
	if len(out.Labels) == 0 {
		out.Labels = nil
	}
	if out.Registration != nil && len(out.Registration.Params) == 0 {
		out.Registration.Params = nil
	}
	return out, nil
}
