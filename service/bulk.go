package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/credsign/credsign/secrets"
)

// Imported is the outcome of one device of a bulk import.
type Imported struct {
	// Device is the stored record (its Secret is blanked).
	Device secrets.Device
	// Created reports whether the device is new.
	Created bool
	// Token is the device token minted with it, when one was asked for;
	// its text is shown once.
	Token *Minted
}

// ImportDevice writes one device of a bulk import and, when mint is set,
// mints its device token in the same pass. With upsert an existing device
// is replaced; without, it is refused (CodeConflict). The device write is
// atomic on its own, like PutDevice. When the token cannot be minted the
// device stays written and the error says so: importing it again with
// upsert repairs it.
//
// Cost: one store write, plus one for the token (no read: the device was
// just written, so MintDeviceToken's existence check is not needed).
func (s *Service) ImportDevice(ctx context.Context, caller Principal, id string, doc Document, upsert, mint bool) (Imported, error) {
	d, created, err := s.PutDevice(ctx, caller, id, doc, Precondition{MustNotExist: !upsert})
	if err != nil {
		return Imported{}, err
	}
	d.Secret = ""
	out := Imported{Device: d, Created: created}
	if !mint {
		return out, nil
	}
	m, err := s.mint(ctx, caller, secrets.RoleDevice, id)
	if err != nil {
		return out, fmt.Errorf("device written, minting its token: %w", err)
	}
	out.Token = &m
	return out, nil
}

// ImportItem is one device of a bulk import.
type ImportItem struct {
	ID  string
	Doc Document
}

// ImportResult is the outcome of one ImportItem: Imported, or Err (with
// Imported.Device set if the device was written but its token was not).
type ImportResult struct {
	Imported
	Err error
}

// ImportDevices writes items as ImportDevice does, each as its own atomic
// create or upsert, and returns one result per item in order; one item
// failing does not stop the others.
//
// Without tokens the whole batch goes to the store in one
// secrets.PutDevices (one transaction and one fsync for the batch on the
// embedded store). With tokens each item is written and then given its
// token one by one: a token stored with its device in the store's bulk
// write would be stamped before the store stamps the device, and a device
// token older than its device is refused.
//
// Cost: without tokens one bulk store write; with tokens two store writes
// an item.
func (s *Service) ImportDevices(ctx context.Context, caller Principal, items []ImportItem, upsert, mint bool) []ImportResult {
	out := make([]ImportResult, len(items))
	if mint {
		for i, it := range items {
			out[i].Imported, out[i].Err = s.ImportDevice(ctx, caller, it.ID, it.Doc, upsert, true)
		}
		return out
	}
	ifVersion := int64(-1)
	if !upsert {
		ifVersion = 0
	}
	puts := make([]secrets.DevicePut, 0, len(items))
	idx := make([]int, 0, len(items))
	for i, it := range items {
		d, err := s.checkDocument(it.ID, it.Doc)
		if err != nil {
			out[i].Err = err
			continue
		}
		puts = append(puts, secrets.DevicePut{Device: d, IfVersion: ifVersion})
		idx = append(idx, i)
	}
	if len(puts) == 0 {
		return out
	}
	for k, r := range secrets.PutDevices(ctx, s.store, puts) {
		i := idx[k]
		s.cache.forgetDevice(puts[k].Device.ID) // even on error: the write may have landed
		switch {
		case errors.Is(r.Err, secrets.ErrConflict) && !upsert:
			out[i].Err = newError(CodeConflict, "the device already exists")
		case r.Err != nil:
			out[i].Err = fmt.Errorf("storing device: %w", r.Err)
		default:
			audit(ctx, caller, "device.put").Str("deviceId", r.Device.ID).Str("cloud", r.Device.Cloud).
				Int64("version", r.Device.Version).Msg("audit")
			r.Device.Secret = ""
			out[i].Imported = Imported{Device: r.Device, Created: r.Device.Version == 1}
		}
	}
	return out
}
