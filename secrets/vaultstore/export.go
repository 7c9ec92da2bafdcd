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
	secrets.KindDevice: devices.folder,
	secrets.KindGroup:  groups.folder,
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

var _ secrets.Importer = (*Store)(nil)

// ImportDevice implements secrets.Importer. Cost: a create is one write
// (check-and-set 0); an overwrite one read and one write.
func (s *Store) ImportDevice(ctx context.Context, d secrets.Device, ifVersion int64) (secrets.Device, error) {
	return devices.importAs(ctx, s, d, ifVersion)
}

// ImportGroup implements secrets.Importer, at the cost of ImportDevice.
func (s *Store) ImportGroup(ctx context.Context, g secrets.Group, ifVersion int64) (secrets.Group, error) {
	return groups.importAs(ctx, s, g, ifVersion)
}

// importRecord writes rec at rel under the compare-and-set rule with KV
// check-and-set, as it is (no times stamped), and returns its KV version.
func importRecord[T any](ctx context.Context, s *Store, rel string, rec T, ifVersion int64, creds ...string) (int64, error) {
	if ifVersion == 0 {
		return s.write(ctx, rel, rec, 0, creds...)
	}
	_, version, exists, err := readRecord[T](ctx, s, rel)
	if err != nil {
		return 0, err
	}
	current := int64(0)
	if exists {
		current = version
	}
	if err := secrets.CheckVersion(current, ifVersion); err != nil {
		return 0, err
	}
	return s.write(ctx, rel, rec, version, creds...)
}
