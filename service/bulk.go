package service

import (
	"context"
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

// ImportDevices writes items as ImportDevice does, each on its own, and
// returns one result per item in order; one item failing does not stop the
// others. It takes a batch so that a store able to write many devices in
// one transaction can be given them at once; today it writes them one by
// one.
func (s *Service) ImportDevices(ctx context.Context, caller Principal, items []ImportItem, upsert, mint bool) []ImportResult {
	out := make([]ImportResult, len(items))
	for i, it := range items {
		out[i].Imported, out[i].Err = s.ImportDevice(ctx, caller, it.ID, it.Doc, upsert, mint)
	}
	return out
}
