package filestore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
)

// GetDevice returns the device or an error wrapping secrets.ErrNotFound.
// Cost: one read transaction, one B+tree lookup, one record opened.
func (s *Store) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	return getRecord(ctx, s, bucketDevices, "device", id, s.c.openDevice)
}

// PutDevice writes d under the compare-and-set rules of
// secrets.DeviceStore. Cost: one record sealed and written in a read-write
// transaction shared with the writes under way at the same time (one fsync
// for all of them); bytes rewritten are the pages on the path to the record,
// O(record), not O(store).
func (s *Store) PutDevice(ctx context.Context, d secrets.Device, ifVersion int64) (secrets.Device, error) {
	res := s.PutDevices(ctx, []secrets.DevicePut{{Device: d, IfVersion: ifVersion}})
	return res[0].Device, res[0].Err
}

// PutDevices writes each item as its own atomic create or upsert (device
// and, when given, its token), under the compare-and-set rules of PutDevice,
// and returns one result per item in order. Items share transactions, up to
// a thousand per commit and fsync, so a large batch costs about one
// transaction per thousand items.
func (s *Store) PutDevices(ctx context.Context, puts []secrets.DevicePut) []secrets.DevicePutResult {
	out := make([]secrets.DevicePutResult, len(puts))
	type chunk struct {
		op    *writeOp
		items []int // items[j]: the item of op.fns[j]
	}
	var chunks []chunk
	// Chunk by chunk, so that the writer commits one while this goroutine
	// prepares (normalizes and seals) the next.
	for lo := 0; lo < len(puts); lo += maxBatch {
		var (
			fns   []writeFn
			items []int
		)
		for i := lo; i < min(lo+maxBatch, len(puts)); i++ {
			fn, err := s.putDeviceFn(puts[i], &out[i].Device)
			if err != nil {
				out[i].Err = err
				continue
			}
			fns, items = append(fns, fn), append(items, i)
		}
		if len(fns) == 0 {
			continue
		}
		op, err := s.submit(ctx, fns)
		if err != nil {
			for _, i := range items {
				out[i].Err = err
			}
			continue
		}
		chunks = append(chunks, chunk{op, items})
	}
	for _, c := range chunks {
		for j, err := range c.op.wait() {
			out[c.items[j]].Err = err
		}
	}
	for i, p := range puts {
		if out[i].Err != nil {
			out[i] = secrets.DevicePutResult{Err: fmt.Errorf("filestore: put device %.64q: %w", p.Device.ID, out[i].Err)}
		}
	}
	return out
}

// putDeviceFn checks p and returns the write that stores it, setting *res.
// What needs no transaction is done here, in the caller's goroutine: the
// record of a create and the token are sealed ahead, so that the one writer
// only seals again for an update.
func (s *Store) putDeviceFn(p secrets.DevicePut, res *secrets.Device) (writeFn, error) {
	if !secrets.ValidID(p.Device.ID) {
		return nil, secrets.ErrInvalid
	}
	var tok *sealedToken
	if p.Token != nil {
		if !secrets.ValidID(p.Token.ID) || !secrets.ValidHash(p.Token.Hash) {
			return nil, fmt.Errorf("token %.64q: bad ID or hash: %w", p.Token.ID, secrets.ErrInvalid)
		}
		var err error
		if tok, err = s.sealToken(*p.Token); err != nil {
			return nil, err
		}
	}
	created, err := secrets.NormalizeDevice(p.Device)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if tok != nil {
		// Born with its first token (see secrets.DevicePut.Token).
		now = p.Token.CreatedAt.UTC()
	}
	created.Version, created.CreatedAt, created.UpdatedAt = 1, now, now
	secrets.CarrySecret(nil, &created, now)
	var sealedCreate []byte
	if p.IfVersion <= 0 {
		if sealedCreate, err = s.c.sealDevice(created); err != nil {
			return nil, err
		}
	}
	key := []byte(created.ID)
	return func(tx *bolt.Tx) error {
		*res = secrets.Device{}
		b := tx.Bucket(bucketDevices)
		rec, sealed := created, sealedCreate
		if v := b.Get(key); v != nil {
			old, err := s.c.openDevice(key, v)
			if err != nil {
				return err
			}
			if err := secrets.CheckVersion(old.Version, p.IfVersion); err != nil {
				return err
			}
			rec.Version, rec.CreatedAt = old.Version+1, old.CreatedAt
			secrets.CarrySecret(&old, &rec, rec.UpdatedAt)
			if sealed, err = s.c.sealDevice(rec); err != nil {
				return err
			}
		} else if err := secrets.CheckVersion(0, p.IfVersion); err != nil {
			return err
		}
		if tok != nil {
			if err := tok.conflict(tx); err != nil {
				return err
			}
		}
		if err := s.put(tx, bucketDevices, key, sealed); err != nil {
			return abort(err)
		}
		if tok != nil {
			if err := s.putToken(tx, tok); err != nil {
				return abort(err)
			}
		}
		*res = rec
		return nil
	}, nil
}

// DeleteDevice removes the device, or returns an error wrapping
// secrets.ErrNotFound. Cost: one key deleted in a shared read-write
// transaction. The freed pages keep the sealed record until bbolt reuses
// them (see docs/store.md).
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	return s.deleteRecord(ctx, bucketDevices, "device", id)
}

// ScanBudget is how many device records one ListDevices call examines at
// most when secrets.ListOptions.MaxScan is 0. Examining one costs an AES-GCM
// open and a JSON decode (tens of microseconds), all in one read transaction,
// so a call spends at most a second or two (33,000 records took 2.2 s on a
// busy two-core machine).
const ScanBudget = 50_000

// ListDevices returns a page of devices sorted by ID, of those that match
// opts' filters. Cost: one read transaction, a cursor seek to opts.After,
// then one record opened per device examined, until the page is full and
// one more match is found (to know whether a page follows), the end, or
// the scan budget (opts.MaxScan, else ScanBudget).
func (s *Store) ListDevices(ctx context.Context, opts secrets.ListOptions) (secrets.Page, error) {
	limit := secrets.PageLimit(opts.Limit)
	budget := opts.Budget(ScanBudget)
	var page secrets.Page
	err := s.view(ctx, func(tx *bolt.Tx) error {
		page = secrets.Page{}
		cur := tx.Bucket(bucketDevices).Cursor()
		k, v := cur.Seek([]byte(opts.After))
		if k != nil && bytes.Equal(k, []byte(opts.After)) {
			k, v = cur.Next()
		}
		last := ""
		for ; k != nil; k, v = cur.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if page.Scanned == budget {
				if len(page.Devices) == limit {
					page.Next = page.Devices[limit-1].ID
				} else {
					page.Next, page.Partial = last, true
				}
				return nil
			}
			d, err := s.c.openDevice(k, v)
			if err != nil {
				return err
			}
			page.Scanned++
			last = d.ID
			if !opts.Matches(d) {
				continue
			}
			if len(page.Devices) == limit {
				page.Next = page.Devices[limit-1].ID
				return nil
			}
			page.Devices = append(page.Devices, d)
		}
		return nil
	})
	if err != nil {
		return secrets.Page{}, fmt.Errorf("filestore: list devices: %w", err)
	}
	return page, nil
}
