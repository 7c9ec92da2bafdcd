package service

import (
	"context"
	"io"

	"github.com/credsign/credsign/secrets"
)

// ErrNoBackup is the answer to Backup on a store that cannot copy itself
// (Vault, which is backed up with its own Raft snapshots).
var ErrNoBackup = newError(CodeConflict, "this server's store is backed up by its own means (Vault: vault operator raft snapshot save), not through credsign")

// Backup writes a consistent copy of the whole store to w while the
// service keeps serving (secrets.Snapshotter), calling size with its length
// first, and returns the bytes written. The copy holds sealed records and
// no key. The API lets admins only call it.
func (s *Service) Backup(ctx context.Context, caller Principal, w io.Writer, size func(int64)) (int64, error) {
	snap, ok := secrets.As[secrets.Snapshotter](s.store)
	if !ok {
		return 0, ErrNoBackup
	}
	n, err := snap.Snapshot(ctx, w, size)
	ev := audit(ctx, caller, "store.backup").Int64("bytes", n)
	if err != nil {
		ev.Bool("failed", true)
	}
	ev.Msg("audit")
	return n, err
}
