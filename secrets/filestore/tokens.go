package filestore

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
)

// sealedToken is a token record ready to write: its ID, sealed value and
// index key.
type sealedToken struct {
	id, value, hashKey []byte
}

func (s *Store) sealToken(t secrets.Token) (*sealedToken, error) {
	t.CreatedAt = t.CreatedAt.UTC()
	v, err := s.c.sealToken(t)
	if err != nil {
		return nil, err
	}
	return &sealedToken{id: []byte(t.ID), value: v, hashKey: s.c.hashKey(t.Hash)}, nil
}

// conflict reports whether the token's ID or hash is taken.
func (t *sealedToken) conflict(tx *bolt.Tx) error {
	if tx.Bucket(bucketTokens).Get(t.id) != nil {
		return fmt.Errorf("%w: token ID exists", secrets.ErrConflict)
	}
	if tx.Bucket(bucketTokenHashes).Get(t.hashKey) != nil {
		return fmt.Errorf("%w: token hash exists", secrets.ErrConflict)
	}
	return nil
}

// putToken writes the record and its index entry; the caller checked
// conflict.
func (s *Store) putToken(tx *bolt.Tx, t *sealedToken) error {
	if err := s.put(tx, bucketTokens, t.id, t.value); err != nil {
		return err
	}
	return s.put(tx, bucketTokenHashes, t.hashKey, t.id)
}

// PutToken stores a new token record and its hash index entry. Cost: two
// keys written in a shared read-write transaction.
func (s *Store) PutToken(ctx context.Context, t secrets.Token) error {
	if !secrets.ValidID(t.ID) || !secrets.ValidHash(t.Hash) {
		return fmt.Errorf("filestore: put token %.64q: bad ID or hash: %w", t.ID, secrets.ErrInvalid)
	}
	st, err := s.sealToken(t)
	if err == nil {
		err = s.write(ctx, func(tx *bolt.Tx) error {
			if err := st.conflict(tx); err != nil {
				return err
			}
			return abort(s.putToken(tx, st))
		})
	}
	if err != nil {
		return fmt.Errorf("filestore: put token %q: %w", t.ID, err)
	}
	return nil
}

// tokenByID reads the token with key id in tx.
func (s *Store) tokenByID(tx *bolt.Tx, id []byte) (secrets.Token, error) {
	v := tx.Bucket(bucketTokens).Get(id)
	if v == nil {
		return secrets.Token{}, secrets.ErrNotFound
	}
	return s.c.openToken(id, v)
}

// TokenByHash finds a token by the hash of its text through the hash index,
// not a scan. Cost: one read transaction, two B+tree lookups, one record
// opened.
func (s *Store) TokenByHash(ctx context.Context, hash string) (secrets.Token, error) {
	if !secrets.ValidHash(hash) {
		return secrets.Token{}, fmt.Errorf("filestore: token by hash: %w", secrets.ErrInvalid)
	}
	var t secrets.Token
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketTokenHashes).Get(s.c.hashKey(hash))
		if id == nil {
			return secrets.ErrNotFound
		}
		var err error
		if t, err = s.tokenByID(tx, id); err != nil {
			return err
		}
		if t.Hash != hash {
			return fmt.Errorf("%w: token index entry points at another token", ErrDamaged)
		}
		return nil
	})
	if err != nil {
		return secrets.Token{}, fmt.Errorf("filestore: token by hash: %w", err)
	}
	return t, nil
}

// GetToken finds a token by ID. Cost: one read transaction, one lookup.
func (s *Store) GetToken(ctx context.Context, id string) (secrets.Token, error) {
	if !secrets.ValidID(id) {
		return secrets.Token{}, fmt.Errorf("filestore: get token %.64q: %w", id, secrets.ErrInvalid)
	}
	var t secrets.Token
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		t, err = s.tokenByID(tx, []byte(id))
		return err
	})
	if err != nil {
		return secrets.Token{}, fmt.Errorf("filestore: get token %q: %w", id, err)
	}
	return t, nil
}

// RevokeToken marks the token revoked at the given time; revoking a revoked
// token keeps the first time. Cost: one record rewritten in a shared
// read-write transaction.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if !secrets.ValidID(id) {
		return fmt.Errorf("filestore: revoke token %.64q: %w", id, secrets.ErrInvalid)
	}
	at = at.UTC()
	err := s.write(ctx, func(tx *bolt.Tx) error {
		t, err := s.tokenByID(tx, []byte(id))
		if err != nil || t.RevokedAt != nil {
			return err
		}
		t.RevokedAt = &at
		sealed, err := s.c.sealToken(t)
		if err != nil {
			return err
		}
		return abort(s.put(tx, bucketTokens, []byte(id), sealed))
	})
	if err != nil {
		return fmt.Errorf("filestore: revoke token %q: %w", id, err)
	}
	return nil
}
