package filestore

import (
	"bytes"
	"context"
	"fmt"
	"iter"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
)

// getRecord reads and opens the record id of kind ("device", "group") in
// bucket, or returns an error wrapping secrets.ErrNotFound. Cost: one read
// transaction, one B+tree lookup, one record opened.
func getRecord[T any](ctx context.Context, s *Store, bucket []byte, kind, id string, open func(id, value []byte) (T, error)) (T, error) {
	var rec T
	if !secrets.ValidID(id) {
		return rec, fmt.Errorf("filestore: get %s %.64q: %w", kind, id, secrets.ErrInvalid)
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(id))
		if v == nil {
			return secrets.ErrNotFound
		}
		var err error
		rec, err = open([]byte(id), v)
		return err
	})
	if err != nil {
		var zero T
		return zero, fmt.Errorf("filestore: get %s %q: %w", kind, id, err)
	}
	return rec, nil
}

// deleteRecord removes the record id of kind ("device", "group") from
// bucket, or returns an error wrapping secrets.ErrNotFound. Cost: one key
// deleted in a shared read-write transaction; the freed pages keep the
// sealed record until bbolt reuses them (see docs/store.md).
func (s *Store) deleteRecord(ctx context.Context, bucket []byte, kind, id string) error {
	if !secrets.ValidID(id) {
		return fmt.Errorf("filestore: delete %s %.64q: %w", kind, id, secrets.ErrInvalid)
	}
	key := []byte(id)
	err := s.write(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get(key) == nil {
			return secrets.ErrNotFound
		}
		return abort(s.del(tx, bucket, key))
	})
	if err != nil {
		return fmt.Errorf("filestore: delete %s %q: %w", kind, id, err)
	}
	return nil
}

// keysAfter yields the IDs of the keys of bucket that are prefix + ID,
// with an ID after after, in key order.
func keysAfter(tx *bolt.Tx, bucket []byte, prefix, after string) iter.Seq[string] {
	return func(yield func(string) bool) {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.Seek([]byte(prefix + after)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
			if id := string(k[len(prefix):]); id > after && !yield(id) {
				return
			}
		}
	}
}
