package secrets

import (
	"context"
	"fmt"
)

// DevicePut is one item of a bulk write: a device as for
// DeviceStore.PutDevice, its compare-and-set condition, and optionally the
// device's first token.
type DevicePut struct {
	Device    Device
	IfVersion int64
	// Token, when set, is stored as TokenStore.PutToken would, and only if
	// the device write succeeds. A BulkDeviceStore writes both in one atomic
	// step: a token conflict fails the item and leaves the device unwritten.
	Token *Token
}

// DevicePutResult is the outcome of one DevicePut: the stored device, or Err.
type DevicePutResult struct {
	Device Device
	Err    error
}

// BulkDeviceStore is implemented by stores that write many devices for much
// less than one PutDevice each (the embedded store: one transaction and one
// fsync for up to a thousand items).
type BulkDeviceStore interface {
	// PutDevices writes each item as its own atomic create or upsert, under
	// the compare-and-set rules of PutDevice, and returns one result per item
	// in order. One item failing does not stop the others.
	PutDevices(ctx context.Context, puts []DevicePut) []DevicePutResult
}

// PutDevices writes puts through s: in bulk when s is a BulkDeviceStore,
// else one PutDevice (and PutToken) per item. In the second case an item
// whose token fails keeps its device, and its Err says so.
func PutDevices(ctx context.Context, s Store, puts []DevicePut) []DevicePutResult {
	if b, ok := s.(BulkDeviceStore); ok {
		return b.PutDevices(ctx, puts)
	}
	out := make([]DevicePutResult, len(puts))
	for i, p := range puts {
		d, err := s.PutDevice(ctx, p.Device, p.IfVersion)
		if err == nil && p.Token != nil {
			if terr := s.PutToken(ctx, *p.Token); terr != nil {
				err = fmt.Errorf("device %q written, its token not: %w", p.Device.ID, terr)
			}
		}
		out[i] = DevicePutResult{Device: d, Err: err}
	}
	return out
}
