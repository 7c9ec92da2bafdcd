package filestore

import (
	"encoding/json"
	"fmt"

	"github.com/credsign/credsign/secrets"
)

// normalize returns d as it reads back from the data file: Params and Labels
// go through encoding/json, so numbers become float64 and empty maps nil.
// The result shares nothing with d.
func normalize(d secrets.Device) (secrets.Device, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return secrets.Device{}, fmt.Errorf("%w: params or labels cannot be encoded as JSON", secrets.ErrInvalid)
	}
	var out secrets.Device
	if err := json.Unmarshal(b, &out); err != nil {
		return secrets.Device{}, fmt.Errorf("%w: params or labels cannot be decoded", secrets.ErrInvalid)
	}
	return out, nil
}

// cloneDevice returns a deep copy of d, so callers can change what they get
// without touching the store.
func cloneDevice(d secrets.Device) secrets.Device {
	if d.Params != nil {
		d.Params = cloneValue(d.Params).(map[string]any)
	}
	if d.Labels != nil {
		labels := make(map[string]string, len(d.Labels))
		for k, v := range d.Labels {
			labels[k] = v
		}
		d.Labels = labels
	}
	return d
}

// cloneValue deep-copies a value decoded by encoding/json.
func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = cloneValue(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = cloneValue(e)
		}
		return s
	default:
		return v
	}
}

// cloneToken returns a copy of t that shares no pointer with it, its times
// in UTC.
func cloneToken(t secrets.Token) secrets.Token {
	t.CreatedAt = t.CreatedAt.UTC()
	if t.RevokedAt != nil {
		at := t.RevokedAt.UTC()
		t.RevokedAt = &at
	}
	return t
}
