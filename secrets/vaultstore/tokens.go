package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/credsign/credsign/secrets"
)

// Token records live at <prefix>tokens/by-hash/<hash> (the lookup every
// authenticated request makes), with an index <prefix>tokens/by-id/<id>
// holding {"hash": …} for GetToken and RevokeToken. PutToken claims the ID
// first, so a crash between the two writes leaves at worst an index entry
// without a record, which reads as not found. A third write indexes the
// token by its owner, for ListTokens: <prefix>tokens/by-device/<device>/<id>
// or <prefix>tokens/provisioners/<id>; an entry without its record lists
// nothing.

func tokenHashRel(hash string) string { return "tokens/by-hash/" + hash }
func tokenIDRel(id string) string     { return "tokens/by-id/" + id }

// tokenOwnerFolder is the folder of the owner index entries of the tokens
// of role (and deviceID).
func tokenOwnerFolder(role, deviceID string) string {
	if role == secrets.RoleDevice {
		return "tokens/by-device/" + deviceID + "/"
	}
	return "tokens/provisioners/"
}

// ownersIndexedRel marks a store whose owner index covers every token
// (written by the first ListTokens that indexed the tokens from before it).
const ownersIndexedRel = "tokens/owners-indexed"

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
		return s.indexOwner(ctx, t)
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

// indexOwner writes the owner index entry of t (once: an entry that exists
// is left as it is).
func (s *Store) indexOwner(ctx context.Context, t secrets.Token) error {
	_, err := s.write(ctx, tokenOwnerFolder(t.Role, t.DeviceID)+t.ID, tokenIndex{Hash: t.Hash}, 0)
	if errors.Is(err, secrets.ErrConflict) {
		return nil
	}
	return err
}

// ReplaceToken implements secrets.TokenStore with a check-and-set on the
// record's KV version. Cost: two reads (the ID index, the record), one
// write.
func (s *Store) ReplaceToken(ctx context.Context, id, by string, at time.Time) (secrets.Token, error) {
	if !secrets.ValidID(id) || !secrets.ValidID(by) {
		return secrets.Token{}, fmt.Errorf("vaultstore: replace token %.64q: %w", id, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	at = at.UTC()
	t, version, err := s.tokenByID(ctx, id)
	switch {
	case err != nil:
	case t.ReplacedBy != "":
		err = fmt.Errorf("%w: token was replaced already", secrets.ErrConflict)
	case t.RevokedAt != nil:
		err = fmt.Errorf("%w: token is revoked", secrets.ErrConflict)
	default:
		t.ReplacedBy, t.ReplacedAt = by, &at
		_, err = s.write(ctx, tokenHashRel(t.Hash), t, version)
	}
	if err != nil {
		return secrets.Token{}, fmt.Errorf("vaultstore: replace token %q: %w", id, err)
	}
	return t, nil
}

// ListTokens implements secrets.TokenStore. Cost: one LIST of the owner's
// index folder, then two reads (the ID index, the record) per token on the
// page plus one, eight at a time. The first call of a process on a store
// whose tokens predate the owner index indexes them first (see
// indexTokenOwners).
func (s *Store) ListTokens(ctx context.Context, opts secrets.TokenListOptions) (secrets.TokenPage, error) {
	if !opts.Valid() {
		return secrets.TokenPage{}, fmt.Errorf("vaultstore: list tokens: %w", secrets.ErrInvalid)
	}
	// Not under one call's timeout: indexing a large store's tokens takes
	// longer than one call (each of its calls has its own).
	if err := s.indexTokenOwners(ctx); err != nil {
		return secrets.TokenPage{}, fmt.Errorf("vaultstore: list tokens: %w", err)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	page, err := s.listTokens(ctx, opts)
	if err != nil {
		return secrets.TokenPage{}, fmt.Errorf("vaultstore: list tokens: %w", err)
	}
	return page, nil
}

func (s *Store) listTokens(ctx context.Context, opts secrets.TokenListOptions) (secrets.TokenPage, error) {
	limit := secrets.PageLimit(opts.Limit)
	keys, err := s.list(ctx, tokenOwnerFolder(opts.Role, opts.DeviceID))
	if err != nil {
		return secrets.TokenPage{}, err
	}
	ids := keys[:0]
	for _, k := range keys {
		if k > opts.After && secrets.ValidID(k) {
			ids = append(ids, k)
		}
	}
	slices.Sort(ids)
	var page secrets.TokenPage
	for len(ids) > 0 && len(page.Tokens) <= limit {
		batch := ids[:min(len(ids), max(limit+1-len(page.Tokens), readConcurrency))]
		ids = ids[len(batch):]
		toks := make([]secrets.Token, len(batch))
		errs := make([]error, len(batch))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(readConcurrency)
		for i, id := range batch {
			g.Go(func() error {
				toks[i], _, errs[i] = s.tokenByID(gctx, id)
				if errors.Is(errs[i], secrets.ErrNotFound) {
					return nil
				}
				return errs[i]
			})
		}
		if err := g.Wait(); err != nil {
			return secrets.TokenPage{}, err
		}
		for i, t := range toks {
			if errs[i] == nil && t.Role == opts.Role && t.DeviceID == opts.DeviceID {
				page.Tokens = append(page.Tokens, t)
			}
		}
	}
	if len(page.Tokens) > limit {
		page.Tokens = page.Tokens[:limit]
		page.Next = page.Tokens[limit-1].ID
	}
	return page, nil
}

// indexTokenOwners makes sure that the owner index covers the tokens
// written before it existed: the migration of the Vault layout, done by
// the first listing of a process (one read of the marker), and on a store
// not yet marked by walking every token once (one LIST, two reads and one
// write per token), then writing the marker. Each of these calls has its
// own timeout (Config.Timeout), the walk as a whole none but ctx's.
// Replicas that do it at the same time write the same entries. A store
// created empty is marked at once (see markOwnersIndexed).
func (s *Store) indexTokenOwners(ctx context.Context) error {
	if s.ownersIndexed.Load() {
		return nil
	}
	cctx, cancel := s.callCtx(ctx)
	e, err := s.read(cctx, ownersIndexedRel)
	cancel()
	if err != nil {
		return err
	}
	if e.data == nil {
		cctx, cancel := s.callCtx(ctx)
		ids, err := s.list(cctx, "tokens/by-id/")
		cancel()
		if err != nil {
			return err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(readConcurrency)
		for _, id := range ids {
			if !secrets.ValidID(id) {
				continue
			}
			g.Go(func() error {
				cctx, cancel := s.callCtx(gctx)
				defer cancel()
				t, _, err := s.tokenByID(cctx, id)
				if errors.Is(err, secrets.ErrNotFound) {
					return nil
				}
				if err != nil {
					return err
				}
				return s.indexOwner(cctx, t)
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("indexing the tokens by owner: %w", err)
		}
		if err := s.markOwnersIndexed(ctx); err != nil {
			return err
		}
	}
	s.ownersIndexed.Store(true)
	return nil
}

// markOwnersIndexed writes the marker that the owner index covers every
// token (check-and-set 0: a marker already there is kept).
func (s *Store) markOwnersIndexed(ctx context.Context) error {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	if _, err := s.write(cctx, ownersIndexedRel, map[string]any{"indexed": true}, 0); err != nil && !errors.Is(err, secrets.ErrConflict) {
		return err
	}
	return nil
}
