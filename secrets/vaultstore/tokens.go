package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/credsign/credsign/secrets"
)

// Token records live at <prefix>tokens/by-hash/<hash> (the lookup every
// authenticated request makes), with an index <prefix>tokens/by-id/<id>
// holding {"hash": …} for GetToken and RevokeToken. PutToken claims the ID
// first, so a crash between the two writes leaves at worst an index entry
// without a record, which reads as not found.

func tokenHashRel(hash string) string { return "tokens/by-hash/" + hash }
func tokenIDRel(id string) string     { return "tokens/by-id/" + id }

type tokenIndex struct {
	Hash string `json:"hash"`
}

// PutToken stores a new token record; ErrConflict if its ID or hash exists.
func (s *Store) PutToken(ctx context.Context, t secrets.Token) error {
	if !secrets.ValidID(t.ID) || !secrets.ValidHash(t.Hash) {
		return fmt.Errorf("vaultstore: put token %.64q: bad ID or hash: %w", t.ID, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	if err := s.putToken(ctx, t); err != nil {
		return fmt.Errorf("vaultstore: put token %q: %w", t.ID, err)
	}
	return nil
}

func (s *Store) putToken(ctx context.Context, t secrets.Token) error {
	t.CreatedAt = t.CreatedAt.UTC()
	if _, err := s.write(ctx, tokenIDRel(t.ID), tokenIndex{Hash: t.Hash}, 0); err != nil {
		if errors.Is(err, secrets.ErrConflict) {
			return fmt.Errorf("%w: token ID exists", secrets.ErrConflict)
		}
		return err
	}
	_, err := s.write(ctx, tokenHashRel(t.Hash), t, 0)
	if err == nil {
		return nil
	}
	// Give the ID back; if that fails too, the index entry reads as not found.
	if derr := s.destroy(ctx, tokenIDRel(t.ID)); derr != nil {
		err = errors.Join(err, fmt.Errorf("remove index: %w", derr))
	}
	if errors.Is(err, secrets.ErrConflict) {
		return fmt.Errorf("%w: token hash exists", secrets.ErrConflict)
	}
	return err
}

// readToken reads the record at by-hash/<hash> with its KV version.
func (s *Store) readToken(ctx context.Context, hash string) (secrets.Token, int64, error) {
	e, err := s.read(ctx, tokenHashRel(hash))
	if err != nil {
		return secrets.Token{}, 0, err
	}
	if e.data == nil {
		return secrets.Token{}, 0, secrets.ErrNotFound
	}
	var t secrets.Token
	if err := json.Unmarshal(e.data, &t); err != nil {
		return secrets.Token{}, 0, fmt.Errorf("decode token record: %w", err)
	}
	return t, e.version, nil
}

// tokenByID follows the ID index to the record.
func (s *Store) tokenByID(ctx context.Context, id string) (secrets.Token, int64, error) {
	e, err := s.read(ctx, tokenIDRel(id))
	if err != nil {
		return secrets.Token{}, 0, err
	}
	var idx tokenIndex
	if e.data == nil {
		return secrets.Token{}, 0, secrets.ErrNotFound
	}
	if err := json.Unmarshal(e.data, &idx); err != nil || !secrets.ValidHash(idx.Hash) {
		return secrets.Token{}, 0, fmt.Errorf("bad token index entry %q", id)
	}
	t, v, err := s.readToken(ctx, idx.Hash)
	if err == nil && t.ID != id {
		err = secrets.ErrNotFound
	}
	return t, v, err
}

// TokenByHash finds a token by the hash of its text.
func (s *Store) TokenByHash(ctx context.Context, hash string) (secrets.Token, error) {
	if !secrets.ValidHash(hash) {
		return secrets.Token{}, fmt.Errorf("vaultstore: token by hash: %w", secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	t, _, err := s.readToken(ctx, hash)
	if err != nil {
		return secrets.Token{}, fmt.Errorf("vaultstore: token by hash: %w", err)
	}
	return t, nil
}

// GetToken finds a token by ID.
func (s *Store) GetToken(ctx context.Context, id string) (secrets.Token, error) {
	if !secrets.ValidID(id) {
		return secrets.Token{}, fmt.Errorf("vaultstore: get token %.64q: %w", id, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	t, _, err := s.tokenByID(ctx, id)
	if err != nil {
		return secrets.Token{}, fmt.Errorf("vaultstore: get token %q: %w", id, err)
	}
	return t, nil
}

// RevokeToken marks the token revoked at the given time; revoking a revoked
// token keeps the first time.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if !secrets.ValidID(id) {
		return fmt.Errorf("vaultstore: revoke token %.64q: %w", id, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	if err := s.revokeToken(ctx, id, at.UTC()); err != nil {
		return fmt.Errorf("vaultstore: revoke token %q: %w", id, err)
	}
	return nil
}

func (s *Store) revokeToken(ctx context.Context, id string, at time.Time) error {
	for attempt := 0; ; attempt++ {
		t, version, err := s.tokenByID(ctx, id)
		if err != nil || t.RevokedAt != nil {
			return err
		}
		t.RevokedAt = &at
		_, err = s.write(ctx, tokenHashRel(t.Hash), t, version)
		if errors.Is(err, secrets.ErrConflict) && attempt < casRetries {
			continue
		}
		return err
	}
}
