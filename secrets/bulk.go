package secrets

import (
	"context"
	"fmt"
	"sync"
)

// DevicePut is one item of a bulk write: a device as for
// DeviceStore.PutDevice, its compare-and-set condition, and optionally the
// device's first token.
type DevicePut struct {
	Device    Device
	IfVersion int64
	// Token, when set, is stored as TokenStore.PutToken would, and only if
	// the device write succeeds. A BulkDeviceStore writes both in one atomic
	// step (a token conflict fails the item and leaves the device unwritten)
	// and stamps a created device with the token's CreatedAt, so that the
	// device is not younger than its first token. Without bulk writes the
	// device is written first and stamped by the store.
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

// putParallel bounds the writes PutDevices has under way at once on a store
// without bulk writes (each is a round trip to Vault).
const putParallel = 32

// PutDevices writes puts through s: in bulk when s is a BulkDeviceStore,
// else one PutDevice (and PutToken) per item, up to putParallel at once,
// the items of one device ID one after the other in their order. In the
// second case an item whose token fails keeps its device, and its Err says
// so.
func PutDevices(ctx context.Context, s Store, puts []DevicePut) []DevicePutResult {
	if b, ok := s.(BulkDeviceStore); ok {
		return b.PutDevices(ctx, puts)
	}
	out := make([]DevicePutResult, len(puts))
	byID := make(map[string][]int, len(puts))
	var ids []string
	for i, p := range puts {
		if _, ok := byID[p.Device.ID]; !ok {
			ids = append(ids, p.Device.ID)
		}
		byID[p.Device.ID] = append(byID[p.Device.ID], i)
	}
	sem := make(chan struct{}, putParallel)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			for _, i := range byID[id] {
				out[i] = putOne(ctx, s, puts[i])
			}
		}()
	}
	wg.Wait()
	return out
}

// putOne writes one item of PutDevices on a store without bulk writes.
func putOne(ctx context.Context, s Store, p DevicePut) DevicePutResult {
	d, err := s.PutDevice(ctx, p.Device, p.IfVersion)
	if err == nil && p.Token != nil {
		if terr := s.PutToken(ctx, *p.Token); terr != nil {
			err = fmt.Errorf("device %q written, its token not: %w", p.Device.ID, terr)
		}
	}
	return DevicePutResult{Device: d, Err: err}
}
