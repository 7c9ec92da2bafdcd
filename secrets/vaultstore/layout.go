package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/credsign/credsign/secrets"
)

// layoutRel is the record that holds the version of the store's layout (the
// paths under the prefix and the shape of their records), so that a build
// that does not know a newer layout refuses it instead of misreading it.
const layoutRel = "meta/layout"

// LayoutVersion is the layout this build writes and reads. A change that
// an older build would misread raises it, with a migration from the
// previous version in checkLayout and an upgrade fixture made by the
// release that wrote it (internal/testing/upgrade). Version 1 is the layout
// of credsign v0.4.0 and earlier, which wrote no layout record.
const LayoutVersion = 1

// layoutRecord is the content of layoutRel.
type layoutRecord struct {
	Format int `json:"format"`
}

// checkLayout reads the layout record; it writes it when absent (a new
// store, or one written before layouts were versioned, which is version 1)
// and refuses a newer version with secrets.ErrNewerLayout, writing nothing.
func (s *Store) checkLayout(ctx context.Context) error {
	e, err := s.read(ctx, layoutRel)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.dataPath(layoutRel), err)
	}
	if e.data == nil {
		// Check-and-set 0: of replicas starting at once, one writes it.
		_, err := s.write(ctx, layoutRel, layoutRecord{Format: LayoutVersion}, 0)
		if err != nil && !errors.Is(err, secrets.ErrConflict) {
			return fmt.Errorf("write %s: %w", s.dataPath(layoutRel), err)
		}
		if err == nil {
			return s.markIfNoTokens(ctx)
		}
		if e, err = s.read(ctx, layoutRel); err != nil {
			return fmt.Errorf("read %s: %w", s.dataPath(layoutRel), err)
		}
	}
	var rec layoutRecord
	if err := json.Unmarshal(e.data, &rec); err != nil || rec.Format < 1 {
		return fmt.Errorf("%s: not a layout record (want {\"format\": N})", s.dataPath(layoutRel))
	}
	if rec.Format > LayoutVersion {
		return fmt.Errorf("%s says layout version %d, this build reads up to %d: %w (run that release, or restore a snapshot taken before the upgrade)",
			s.dataPath(layoutRel), rec.Format, LayoutVersion, secrets.ErrNewerLayout)
	}
	return nil
}

// markIfNoTokens marks the token owner index complete on a store that
// holds no token when its layout record is first written (a new store,
// such as the destination of credsign migrate, which then indexes every
// token it is given): its first listing then has no tokens of an older
// release to index. A store of v0.4.0 has tokens and is indexed by its
// first listing (indexTokenOwners). Cost: one LIST, at the first open.
func (s *Store) markIfNoTokens(ctx context.Context) error {
	ids, err := s.list(ctx, "tokens/by-id/")
	if err != nil {
		return fmt.Errorf("list %s: %w", s.metadataPath("tokens/by-id/"), err)
	}
	if len(ids) > 0 {
		return nil
	}
	if err := s.markOwnersIndexed(ctx); err != nil {
		return fmt.Errorf("write %s: %w", s.dataPath(ownersIndexedRel), err)
	}
	return nil
}
