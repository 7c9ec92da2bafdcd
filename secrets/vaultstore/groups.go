package vaultstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/credsign/credsign/secrets"
)

// groupData is what the store writes at <prefix>groups/<id>. The version is
// the KV version, not a field.
type groupData struct {
	ID           string                `json:"id"`
	Cloud        string                `json:"cloud"`
	Params       map[string]any        `json:"params,omitempty"`
	Secret       string                `json:"secret"`
	Labels       map[string]string     `json:"labels,omitempty"`
	Registration *secrets.Registration `json:"registration,omitempty"`
	RequireKey   bool                  `json:"requireKey,omitempty"`
	// RequireAttestation is secrets.Group.RequireAttestation.
	RequireAttestation string    `json:"requireAttestation,omitempty"`
	CreatedAt          time.Time `json:"createdAt"`
	UpdatedAt          time.Time `json:"updatedAt"`
}

func (g groupData) group(version int64) secrets.Group {
	return secrets.Group{
		ID: g.ID, Cloud: g.Cloud, Params: g.Params, Secret: g.Secret, Labels: g.Labels, Registration: g.Registration,
		RequireKey: g.RequireKey, RequireAttestation: g.RequireAttestation, Version: version, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
	}
}

func groupRel(id string) string { return "groups/" + id }

// readGroup reads a group; ok is false when it does not exist.
func (s *Store) readGroup(ctx context.Context, id string) (g secrets.Group, version int64, ok bool, err error) {
	gd, version, ok, err := readRecord[groupData](ctx, s, groupRel(id))
	if err != nil || !ok {
		return secrets.Group{}, version, false, err
	}
	gd.ID = id
	return gd.group(version), version, true, nil
}

// GetGroup implements secrets.GroupStore. Cost: one Vault read.
func (s *Store) GetGroup(ctx context.Context, id string) (secrets.Group, error) {
	if !secrets.ValidID(id) {
		return secrets.Group{}, fmt.Errorf("vaultstore: get group %.64q: %w", id, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	g, _, ok, err := s.readGroup(ctx, id)
	if err == nil && !ok {
		err = secrets.ErrNotFound
	}
	if err != nil {
		return secrets.Group{}, fmt.Errorf("vaultstore: get group %q: %w", id, err)
	}
	return g, nil
}

// PutGroup implements secrets.GroupStore with KV check-and-set (see
// putRecord for its cost).
func (s *Store) PutGroup(ctx context.Context, g secrets.Group, ifVersion int64) (secrets.Group, error) {
	if !secrets.ValidID(g.ID) {
		return secrets.Group{}, fmt.Errorf("vaultstore: put group %.64q: %w", g.ID, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	out, err := s.putGroup(ctx, g, ifVersion)
	if err != nil {
		return secrets.Group{}, fmt.Errorf("vaultstore: put group %q: %w", g.ID, err)
	}
	return out, nil
}

func (s *Store) putGroup(ctx context.Context, g secrets.Group, ifVersion int64) (secrets.Group, error) {
	n, err := secrets.NormalizeGroup(g)
	if err != nil {
		return secrets.Group{}, err
	}
	gd := groupData{ID: n.ID, Cloud: n.Cloud, Params: n.Params, Secret: n.Secret, Labels: n.Labels, Registration: n.Registration,
		RequireKey: n.RequireKey, RequireAttestation: n.RequireAttestation}
	out, v, err := putRecord(ctx, s, groupRel(g.ID), gd, ifVersion, g.Secret)
	if err != nil {
		return secrets.Group{}, err
	}
	return out.group(v), nil
}

// DeleteGroup implements secrets.GroupStore: it deletes the group's KV
// metadata, which removes every version of its secret.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	return s.deleteRecord(ctx, "group", id, groupRel(id))
}

// ListGroups implements secrets.GroupStore: one list, then one read per
// group of the page (groups are few; they are read one after the other).
func (s *Store) ListGroups(ctx context.Context, after string, limit int) (secrets.GroupPage, error) {
	limit = secrets.PageLimit(limit)
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	keys, err := s.list(ctx, "groups/")
	if err != nil {
		return secrets.GroupPage{}, fmt.Errorf("vaultstore: list groups: %w", err)
	}
	ids := keys[:0]
	for _, k := range keys {
		if k > after && secrets.ValidID(k) {
			ids = append(ids, k)
		}
	}
	slices.Sort(ids)
	var page secrets.GroupPage
	for _, id := range ids {
		g, _, ok, err := s.readGroup(ctx, id)
		if err != nil {
			return secrets.GroupPage{}, fmt.Errorf("vaultstore: list groups: %w", err)
		}
		if !ok {
			continue
		}
		if len(page.Groups) == limit {
			page.Next = page.Groups[limit-1].ID
			break
		}
		page.Groups = append(page.Groups, g)
	}
	return page, nil
}
