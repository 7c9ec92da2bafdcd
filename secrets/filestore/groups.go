package filestore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
)

// bucketGroups holds group records (secrets.GroupStore), sealed like device
// records under their group ID. Files written before groups existed get the
// bucket at open.
var bucketGroups = []byte("groups")

func (c *sealer) sealGroup(g secrets.Group) ([]byte, error) {
	return sealRecord(c, bucketGroups, g.ID, g)
}

func (c *sealer) openGroup(id, value []byte) (secrets.Group, error) {
	return openRecord(c, bucketGroups, "group", id, value, func(g secrets.Group) string { return g.ID })
}

// GetGroup implements secrets.GroupStore. Cost: one read transaction, one
// lookup, one record opened.
func (s *Store) GetGroup(ctx context.Context, id string) (secrets.Group, error) {
	return getRecord(ctx, s, bucketGroups, "group", id, s.c.openGroup)
}

// PutGroup implements secrets.GroupStore. Cost: one record sealed and
// written in a shared read-write transaction.
func (s *Store) PutGroup(ctx context.Context, g secrets.Group, ifVersion int64) (secrets.Group, error) {
	if !secrets.ValidID(g.ID) {
		return secrets.Group{}, fmt.Errorf("filestore: put group %.64q: %w", g.ID, secrets.ErrInvalid)
	}
	rec, err := secrets.NormalizeGroup(g)
	if err != nil {
		return secrets.Group{}, fmt.Errorf("filestore: put group %q: %w", g.ID, err)
	}
	out, err := writeRecord(ctx, s, bucketGroups, rec.ID, ifVersion, s.c.openGroup, groupVersion, s.c.sealGroup,
		func(old *secrets.Group) secrets.Group {
			now := time.Now().UTC()
			next := rec
			next.Version, next.CreatedAt, next.UpdatedAt = 1, now, now
			if old != nil {
				next.Version, next.CreatedAt = old.Version+1, old.CreatedAt
			}
			return next
		})
	if err != nil {
		return secrets.Group{}, fmt.Errorf("filestore: put group %q: %w", g.ID, err)
	}
	return out, nil
}

// DeleteGroup implements secrets.GroupStore.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	return s.deleteRecord(ctx, bucketGroups, "group", id)
}

// ListGroups implements secrets.GroupStore. Cost: one read transaction, a
// cursor seek, one record opened per group returned.
func (s *Store) ListGroups(ctx context.Context, after string, limit int) (secrets.GroupPage, error) {
	limit = secrets.PageLimit(limit)
	var page secrets.GroupPage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		page = secrets.GroupPage{}
		cur := tx.Bucket(bucketGroups).Cursor()
		k, v := cur.Seek([]byte(after))
		if k != nil && bytes.Equal(k, []byte(after)) {
			k, v = cur.Next()
		}
		for ; k != nil; k, v = cur.Next() {
			if len(page.Groups) == limit {
				page.Next = page.Groups[limit-1].ID
				return nil
			}
			g, err := s.c.openGroup(k, v)
			if err != nil {
				return err
			}
			page.Groups = append(page.Groups, g)
		}
		return nil
	})
	if err != nil {
		return secrets.GroupPage{}, fmt.Errorf("filestore: list groups: %w", err)
	}
	return page, nil
}
