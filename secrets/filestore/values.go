package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
)

// bucketKeys holds the service's own keys (secrets.KeyStore), each sealed
// like any record; the plaintext is an 8-byte big-endian version then the
// value. Files written before the bucket existed get it at open.
var bucketKeys = []byte("service-keys")

// GetKey implements secrets.KeyStore. Cost: one read transaction, one lookup.
func (s *Store) GetKey(ctx context.Context, name string) ([]byte, int64, error) {
	if !secrets.ValidID(name) {
		return nil, 0, fmt.Errorf("filestore: get key %.64q: %w", name, secrets.ErrInvalid)
	}
	var value []byte
	var version int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		value, version, err = s.readKey(tx, name)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("filestore: get key %q: %w", name, err)
	}
	return value, version, nil
}

func (s *Store) readKey(tx *bolt.Tx, name string) ([]byte, int64, error) {
	v := tx.Bucket(bucketKeys).Get([]byte(name))
	if v == nil {
		return nil, 0, secrets.ErrNotFound
	}
	plain, err := s.c.open(bucketKeys, []byte(name), v)
	if err != nil {
		return nil, 0, err
	}
	if len(plain) < 8 {
		return nil, 0, fmt.Errorf("%w: key record %q is truncated", ErrDamaged, name)
	}
	return plain[8:], int64(binary.BigEndian.Uint64(plain)), nil
}

// PutKey implements secrets.KeyStore. Cost: one record sealed and written
// in a shared read-write transaction.
func (s *Store) PutKey(ctx context.Context, name string, value []byte, ifVersion int64) (int64, error) {
	if !secrets.ValidID(name) || ifVersion < 0 {
		return 0, fmt.Errorf("filestore: put key %.64q: %w", name, secrets.ErrInvalid)
	}
	version := ifVersion + 1
	plain := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(version))
	sealed, err := s.c.seal(bucketKeys, []byte(name), append(plain, value...))
	if err == nil {
		err = s.write(ctx, func(tx *bolt.Tx) error {
			_, cur, err := s.readKey(tx, name)
			switch {
			case errors.Is(err, secrets.ErrNotFound):
				cur = 0
			case err != nil:
				return err
			}
			if cur != ifVersion {
				return fmt.Errorf("%w: key %q is at version %d, not %d", secrets.ErrConflict, name, cur, ifVersion)
			}
			return abort(s.put(tx, bucketKeys, []byte(name), sealed))
		})
	}
	if err != nil {
		return 0, fmt.Errorf("filestore: put key %q: %w", name, err)
	}
	return version, nil
}
