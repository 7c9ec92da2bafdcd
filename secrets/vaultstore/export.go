package vaultstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/credsign/credsign/secrets"
)

var _ secrets.Enumerator = (*Store)(nil)

// kindFolders maps each kind of record to the folder that names one record
// per key (tokens by their ID index).
var kindFolders = map[secrets.Kind]string{
	secrets.KindDevice: "devices/",
	secrets.KindGroup:  "groups/",
	secrets.KindToken:  "tokens/by-id/",
	secrets.KindKey:    "keys/",
}

// IDs implements secrets.Enumerator. Cost: one Vault LIST of the kind's
// folder, whose answer names every record (about 40 bytes a record: some
// 40 MB of JSON for a million devices).
func (s *Store) IDs(ctx context.Context, kind secrets.Kind) ([]string, error) {
	folder, ok := kindFolders[kind]
	if !ok {
		return nil, fmt.Errorf("vaultstore: list %q: %w", kind, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	keys, err := s.list(ctx, folder)
	if err != nil {
		return nil, fmt.Errorf("vaultstore: list %s: %w", kind, err)
	}
	ids := keys[:0]
	for _, k := range keys {
		if secrets.ValidID(k) { // sub-folders end in "/"
			ids = append(ids, k)
		}
	}
	slices.Sort(ids)
	return ids, nil
}
