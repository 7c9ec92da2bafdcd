package service

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/credsign/credsign/secrets"
)

// Imported is the outcome of one device of a bulk import.
type Imported struct {
	// Device is the stored record (its Secret is blanked).
	Device secrets.Device
	// Created reports whether the device is new.
	Created bool
	// Existing reports that the device existed as the item describes it
	// and was kept (ImportResume).
	Existing bool
	// Token is the device token minted with it, when one was asked for;
	// its text is shown once.
	Token *Minted
}

// ImportMode says what an import does with a device that exists.
type ImportMode int

// Import modes.
const (
	// ImportCreate refuses a device that exists (CodeConflict).
	ImportCreate ImportMode = iota
	// ImportUpsert replaces it.
	ImportUpsert
	// ImportResume keeps it when it is what the item describes (the same
	// cloud, group, params, labels and secret: Imported.Existing, and its
	// token minted when asked for) and refuses it otherwise
	// (CodeConflict). Re-running an import cut short in this mode ends
	// with every device written and, with mint, a token for each.
	ImportResume
)

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

// ImportDevices writes items, each as its own atomic create (what happens
// when the device exists is the mode's), and returns one result per item in order; one item failing does not stop
// the others. When a token cannot be minted the device stays written and
// the error says so: importing it again with upsert repairs it.
//
// The devices of the batch go to the store in one secrets.PutDevices. On a
// store that writes in bulk (the embedded one: one transaction and one
// fsync for up to a thousand items), each device's token goes into the same
// atomic write, minted at the instant the store stamps on a created device
// (a device token older than its device is refused). On other stores (Vault)
// each written device is then given its token, up to mintParallel at once.
//
// Cost: one bulk store write; on a store without bulk writes, with tokens,
// one more token write an item; in ImportResume, one read and (with mint)
// one token write for each device that exists; in ImportUpsert one read a
// line (the write is then a compare-and-set on the version read, and keeps
// the device's keys, as a PUT does). A scoped caller's lines that would put
// a device outside its scope are refused each with the fields named, and a
// device that exists outside it is refused as a PUT refuses it
// (CodeNotFound): for a scoped caller that costs one read for each line
// that finds its device existing in ImportCreate.
func (s *Service) ImportDevices(ctx context.Context, caller Principal, items []ImportItem, mode ImportMode, mint bool) []ImportResult {
	out := make([]ImportResult, len(items))
	upsert := mode == ImportUpsert
	ifVersion := int64(-1)
	if !upsert {
		ifVersion = 0
	}
	_, bulk := s.store.(secrets.BulkDeviceStore)
	together := mint && bulk // tokens written with their devices
	now := s.now()
	puts := make([]secrets.DevicePut, 0, len(items))
	idx := make([]int, 0, len(items))
	minted := make([]Minted, 0, len(items)) // minted[k]: the token of puts[k], when together
	groups := map[string]groupRead{}        // each group of the batch, read once
	for i, it := range items {
		if err := checkLanding(caller, it.Doc.Group, it.Doc.Labels); err != nil {
			out[i].Err = err
			continue
		}
		var g *secrets.Group
		if name := it.Doc.Group; name != "" {
			gr, ok := groups[name]
			if !ok {
				gr.g, gr.err = s.readGroup(ctx, caller.Scope, name)
				groups[name] = gr
			}
			if gr.err != nil {
				out[i].Err = gr.err
				continue
			}
			if gr.g.Registration != nil && it.Doc.Secret == nil {
				out[i].Err = invalid(FieldError{Field: "group", Reason: "the group registers each device with its cloud: enrol its devices, or PUT them one at a time"})
				continue
			}
			if f := identityFields(gr.g, it.ID, it.Doc.Params); len(f) > 0 {
				out[i].Err = invalid(f...)
				continue
			}
			g = &gr.g
		}
		d, err := s.checkDocument(it.ID, it.Doc, g)
		if err != nil {
			out[i].Err = err
			continue
		}
		d.RequireKey = it.Doc.RequireKey
		p := secrets.DevicePut{Device: d, IfVersion: ifVersion}
		if upsert {
			// Replace the device as it was read (inside the caller's
			// scope), keeping its keys as a PUT does.
			cur, err := s.store.GetDevice(ctx, it.ID)
			switch {
			case errors.Is(err, secrets.ErrNotFound):
				p.IfVersion = 0
			case err != nil:
				out[i].Err = fmt.Errorf("reading the existing device: %w", err)
				continue
			case !caller.Scope.HasDevice(cur):
				out[i].Err = errOutsideScope
				continue
			default:
				p.IfVersion, p.Device.Keys = cur.Version, cur.Keys
			}
		}
		if together {
			m, err := s.newToken(ctx, secrets.RoleDevice, d.ID, now)
			if err != nil {
				out[i].Err = err
				continue
			}
			minted = append(minted, m)
			p.Token = &minted[len(minted)-1].Record
		}
		puts = append(puts, p)
		idx = append(idx, i)
	}
	if len(puts) == 0 {
		return out
	}
	var existing []int // ImportResume: the devices kept as they are
	for k, r := range secrets.PutDevices(ctx, s.store, puts) {
		i := idx[k]
		s.cache.forgetDevice(puts[k].Device.ID) // even on error: the write may have landed
		if together {
			s.cache.forgetHash(minted[k].Record.Hash)
		}
		switch {
		case errors.Is(r.Err, secrets.ErrConflict) && mode == ImportResume:
			out[i].Imported, out[i].Err = s.keepExisting(ctx, caller.Scope, puts[k].Device)
			if out[i].Err == nil {
				existing = append(existing, i)
			}
		case errors.Is(r.Err, secrets.ErrConflict) && !upsert:
			out[i].Err = s.existsError(ctx, caller.Scope, puts[k].Device.ID)
		case (errors.Is(r.Err, secrets.ErrConflict) || errors.Is(r.Err, secrets.ErrNotFound)) && puts[k].IfVersion >= 0 && upsert:
			out[i].Err = errChanged
		case r.Err != nil:
			out[i].Err = fmt.Errorf("storing device: %w", r.Err)
		default:
			audit(ctx, caller, "device.put").Str("deviceId", r.Device.ID).Str("cloud", r.Device.Cloud).
				Int64("version", r.Device.Version).Msg("audit")
			r.Device.Secret = ""
			out[i].Imported = Imported{Device: r.Device, Created: r.Device.Version == 1}
			if together {
				auditMinted(ctx, caller, minted[k].Record)
				out[i].Token = &minted[k]
			}
		}
	}
	if mint && !together {
		s.mintAll(ctx, caller, out, idx)
	} else if mint {
		s.mintAll(ctx, caller, out, existing)
	}
	return out
}

// keepExisting reads the device that want's create found, and returns it
// (its Secret blanked) when it is what want describes, or CodeConflict; a
// device outside scope sc is not compared (that would tell whether the
// line holds its secret) and is CodeNotFound, as a PUT answers.
func (s *Service) keepExisting(ctx context.Context, sc *secrets.Scope, want secrets.Device) (Imported, error) {
	got, err := s.store.GetDevice(ctx, want.ID)
	if err != nil {
		return Imported{}, fmt.Errorf("reading the existing device: %w", err)
	}
	if !sc.HasDevice(got) {
		return Imported{}, errOutsideScope
	}
	if !sameDevice(got, want) {
		return Imported{}, newError(CodeConflict, "the device exists and differs from the line (mode=upsert replaces it)")
	}
	got.Secret = ""
	return Imported{Device: got, Existing: true}, nil
}

// sameDevice reports whether two device records describe the same device:
// cloud, group, secret, labels and params (compared as JSON, so that a
// number read back from the store equals the one checked).
func sameDevice(a, b secrets.Device) bool {
	if a.Cloud != b.Cloud || a.Group != b.Group || subtle.ConstantTimeCompare([]byte(a.Secret), []byte(b.Secret)) != 1 ||
		len(a.Labels) != len(b.Labels) || len(a.Params) != len(b.Params) {
		return false
	}
	for k, v := range a.Labels {
		if w, ok := b.Labels[k]; !ok || w != v {
			return false
		}
	}
	pa, errA := json.Marshal(a.Params)
	pb, errB := json.Marshal(b.Params)
	return errA == nil && errB == nil && bytes.Equal(pa, pb)
}

// groupRead is a group as read for a batch: the group or why not.
type groupRead struct {
	g   secrets.Group
	err error
}

// mintParallel bounds the token writes of one import batch under way at once.
const mintParallel = 32

// mintAll mints the device token of every written device of out[idx].
func (s *Service) mintAll(ctx context.Context, caller Principal, out []ImportResult, idx []int) {
	sem := make(chan struct{}, mintParallel)
	var wg sync.WaitGroup
	for _, i := range idx {
		if out[i].Err != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			m, err := s.mint(ctx, caller, out[i].Device)
			if err != nil {
				out[i].Err = fmt.Errorf("device written, minting its token: %w", err)
				return
			}
			out[i].Token = &m
		}()
	}
	wg.Wait()
}
