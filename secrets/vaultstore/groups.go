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

// groups is how the store keeps groups.
var groups = recordKind[secrets.Group, groupData, *groupData]{
	name: "group", folder: "groups/", normalize: secrets.NormalizeGroup,
	id: func(g secrets.Group) string { return g.ID },
	data: func(n, g secrets.Group) groupData {
		return groupData{ID: n.ID, Cloud: n.Cloud, Params: n.Params, Secret: n.Secret, Labels: n.Labels, Registration: n.Registration,
			RequireKey: n.RequireKey, RequireAttestation: n.RequireAttestation,
			CreatedAt: g.CreatedAt.UTC(), UpdatedAt: g.UpdatedAt.UTC()}
	},
	record: func(id string, g groupData, version int64) secrets.Group { g.ID = id; return g.group(version) },
	creds:  func(g secrets.Group) []string { return []string{g.Secret} },
}

// GetGroup implements secrets.GroupStore. Cost: one Vault read.
func (s *Store) GetGroup(ctx context.Context, id string) (secrets.Group, error) {
	return groups.get(ctx, s, id)
}

// PutGroup implements secrets.GroupStore with KV check-and-set (see
// putRecord for its cost).
func (s *Store) PutGroup(ctx context.Context, g secrets.Group, ifVersion int64) (secrets.Group, error) {
	return groups.put(ctx, s, g, ifVersion)
}

// DeleteGroup implements secrets.GroupStore: it deletes the group's KV
// metadata, which removes every version of its secret.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	return groups.delete(ctx, s, id)
}

// ListGroups implements secrets.GroupStore: one list, then one read per
// group of the page (groups are few; they are read one after the other).
func (s *Store) ListGroups(ctx context.Context, after string, limit int) (secrets.GroupPage, error) {
	limit = secrets.PageLimit(limit)
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	keys, err := s.list(ctx, groups.folder)
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
	page.Groups, page.Next, err = secrets.CollectPage(slices.Values(ids), limit, func(id string) (secrets.Group, bool, error) {
		return groups.read(ctx, s, id)
	})
	if err != nil {
		return secrets.GroupPage{}, fmt.Errorf("vaultstore: list groups: %w", err)
	}
	return page, nil
}
