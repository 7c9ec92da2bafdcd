package vaultstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/credsign/credsign/secrets"
)

// readConcurrency bounds the parallel reads of one listing.
const readConcurrency = 8

// casRetries bounds how often an unconditional write re-reads the version
// after losing a race.
const casRetries = 5

// deviceData is what the store writes at <prefix>devices/<id>, and what
// `vault kv get` shows. The version is the KV version, not a field.
type deviceData struct {
	ID     string            `json:"id"`
	Cloud  string            `json:"cloud"`
	Params map[string]any    `json:"params,omitempty"`
	Secret string            `json:"secret"`
	Labels map[string]string `json:"labels,omitempty"`
	Group  string            `json:"group,omitempty"`
	// The secret's bookkeeping (secrets.CarrySecret); a record without
	// secretVersion was written before secret versions and reads as 1.
	SecretVersion   int64      `json:"secretVersion,omitempty"`
	PreviousSecret  string     `json:"previousSecret,omitempty"`
	SecretRotatedAt *time.Time `json:"secretRotatedAt,omitempty"`
	// The device's public keys and key rule (proofs of possession).
	Keys       []secrets.DeviceKey `json:"keys,omitempty"`
	RequireKey bool                `json:"requireKey,omitempty"`
	CreatedAt  time.Time           `json:"createdAt"`
	UpdatedAt  time.Time           `json:"updatedAt"`
}

func (d deviceData) device(version int64) secrets.Device {
	return secrets.Device{
		ID: d.ID, Cloud: d.Cloud, Params: d.Params, Secret: d.Secret, Labels: d.Labels, Group: d.Group,
		SecretVersion: max(d.SecretVersion, 1), PreviousSecret: d.PreviousSecret, SecretRotatedAt: d.SecretRotatedAt,
		Keys: d.Keys, RequireKey: d.RequireKey, Version: version, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

// devices is how the store keeps devices.
var devices = recordKind[secrets.Device, deviceData, *deviceData]{
	name: "device", folder: "devices/", normalize: secrets.NormalizeDevice,
	id: func(d secrets.Device) string { return d.ID },
	data: func(n, d secrets.Device) deviceData {
		return deviceData{ID: n.ID, Cloud: n.Cloud, Params: n.Params, Secret: n.Secret, Labels: n.Labels, Group: n.Group,
			SecretVersion: d.SecretVersion, PreviousSecret: d.PreviousSecret, SecretRotatedAt: d.SecretRotatedAt,
			Keys: n.Keys, RequireKey: n.RequireKey, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
	},
	record: func(id string, d deviceData, version int64) secrets.Device { d.ID = id; return d.device(version) },
	creds:  func(d secrets.Device) []string { return []string{d.Secret, d.PreviousSecret} },
}

// carry sets the secret's bookkeeping of d, replacing old (nil: a
// create), by secrets.CarrySecret, and returns the previous secret for
// scrubbing from errors.
func (d *deviceData) carry(old *deviceData, now time.Time) []string {
	next := d.device(0)
	if old == nil {
		secrets.CarrySecret(nil, &next, now)
	} else {
		prev := old.device(0)
		secrets.CarrySecret(&prev, &next, now)
	}
	d.SecretVersion, d.PreviousSecret, d.SecretRotatedAt = next.SecretVersion, next.PreviousSecret, next.SecretRotatedAt
	if d.PreviousSecret == "" {
		return nil
	}
	return []string{d.PreviousSecret}
}

// GetDevice returns the device or an error wrapping secrets.ErrNotFound.
// Cost: one Vault read.
func (s *Store) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	return devices.get(ctx, s, id)
}

// PutDevice writes d under the compare-and-set rules of
// secrets.DeviceStore, using KV check-and-set (see putRecord for its cost).
func (s *Store) PutDevice(ctx context.Context, d secrets.Device, ifVersion int64) (secrets.Device, error) {
	return devices.put(ctx, s, d, ifVersion)
}

// DeleteDevice deletes the device's KV metadata, which removes every version
// of its secret, or returns an error wrapping secrets.ErrNotFound.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	return devices.delete(ctx, s, id)
}

// ScanBudget is how many device records one ListDevices call reads at most
// when secrets.ListOptions.MaxScan is 0. Each is one Vault read (eight at a
// time), so a call costs at most one LIST and ScanBudget reads: a fraction
// of a second on an idle loopback Vault, about three seconds on a busy
// two-core machine (330 reads a second), well inside the call timeout.
const ScanBudget = 1_000

// ListDevices returns a page of devices sorted by ID, of those that match
// opts' filters. Cost: one LIST of the device keys, then one read per
// device examined (eight at a time), until the page is full and one more
// match is found (to know whether a page follows), the end, or the scan
// budget (opts.MaxScan, else ScanBudget).
func (s *Store) ListDevices(ctx context.Context, opts secrets.ListOptions) (secrets.Page, error) {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	page, err := s.listDevices(ctx, opts)
	if err != nil {
		return secrets.Page{}, fmt.Errorf("vaultstore: list devices: %w", err)
	}
	return page, nil
}

func (s *Store) listDevices(ctx context.Context, opts secrets.ListOptions) (secrets.Page, error) {
	limit := secrets.PageLimit(opts.Limit)
	budget := opts.Budget(ScanBudget)
	keys, err := s.list(ctx, devices.folder)
	if err != nil {
		return secrets.Page{}, err
	}
	ids := keys[:0]
	for _, k := range keys {
		if k > opts.After && secrets.ValidID(k) {
			ids = append(ids, k)
		}
	}
	slices.Sort(ids)
	// Read until one more than the limit matches, so Next is set only if a
	// page follows.
	var (
		found []secrets.Device
		page  secrets.Page
		last  string
	)
	for len(ids) > 0 && len(found) <= limit && page.Scanned < budget {
		n := min(len(ids), max(limit+1-len(found), readConcurrency), budget-page.Scanned)
		batch := ids[:n]
		ids = ids[n:]
		devs := make([]secrets.Device, len(batch))
		ok := make([]bool, len(batch))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(readConcurrency)
		for i, id := range batch {
			g.Go(func() error {
				var err error
				devs[i], ok[i], err = devices.read(gctx, s, id)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return secrets.Page{}, err
		}
		for i := range batch {
			page.Scanned++
			last = batch[i]
			if ok[i] && opts.Matches(devs[i]) {
				found = append(found, devs[i])
				if len(found) > limit {
					break // the rest of the batch was read for nothing
				}
			}
		}
	}
	switch {
	case len(found) > limit:
		found = found[:limit]
		page.Next = found[limit-1].ID
	case len(ids) > 0 && len(found) == limit:
		page.Next = found[limit-1].ID // the budget ran out with the page full
	case len(ids) > 0:
		page.Next, page.Partial = last, true
	}
	page.Devices = found
	return page, nil
}
