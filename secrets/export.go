package secrets

import (
	"context"
	"io"
)

// Kind names a kind of stored record, for Enumerator.
type Kind string

// The kinds of record a Store holds. Every record the service keeps is one
// of these: device tokens, revocation lists, the JWT key ring and enrolment
// tokens are KindKey records (KeyStore names) or KindToken records.
const (
	KindDevice Kind = "devices"
	KindGroup  Kind = "groups"
	KindToken  Kind = "tokens"
	KindKey    Kind = "keys"
)

// Kinds lists every Kind, in the order a copy writes them (keys first, so
// that a service started on a half-copied store already checks device
// tokens with the source's MAC key rather than making one of its own).
var Kinds = []Kind{KindKey, KindGroup, KindDevice, KindToken}

// Enumerator is implemented by stores that can name every record they
// hold: the Store interface lists devices and groups page by page and
// tokens and keys not at all, which a migration or a backup check needs.
type Enumerator interface {
	// IDs returns, sorted, the IDs of every record of kind (the names, for
	// KindKey). Cost: the embedded store walks one bucket in one read
	// transaction; Vault answers one LIST.
	IDs(ctx context.Context, kind Kind) ([]string, error)
}

// Snapshotter is implemented by stores that can write a consistent copy of
// themselves while they serve (the embedded store: a bbolt read
// transaction, which writers do not wait for).
type Snapshotter interface {
	// Snapshot writes the whole store, as of one instant, to w and returns
	// the number of bytes written. size, when not nil, is called once with
	// the length of the copy before its first byte is written.
	Snapshot(ctx context.Context, w io.Writer, size func(n int64)) (int64, error)
}

// Wrapper is implemented by stores that wrap another (instrumentation, a
// cache): Unwrap returns the store underneath, so that the abilities it
// has beyond Store (Snapshotter, Enumerator) can be found.
type Wrapper interface {
	Unwrap() Store
}

// As returns the first store in the chain s, s.Unwrap(), … that is a T.
func As[T any](s Store) (T, bool) {
	for s != nil {
		if t, ok := s.(T); ok {
			return t, true
		}
		w, ok := s.(Wrapper)
		if !ok {
			break
		}
		s = w.Unwrap()
	}
	var zero T
	return zero, false
}

// Importer is implemented by stores that can write a device or a group as
// another store holds it, its creation and update times included. A copy
// needs them: a device token minted before its device's CreatedAt is
// refused (a token of an earlier device of the same ID), so a device
// stamped anew by its destination would refuse every token it had.
type Importer interface {
	// ImportDevice writes d as PutDevice does, under the same
	// compare-and-set rule, but keeps d.CreatedAt and d.UpdatedAt. The
	// store still sets Version.
	ImportDevice(ctx context.Context, d Device, ifVersion int64) (Device, error)
	// ImportGroup is ImportDevice for a group.
	ImportGroup(ctx context.Context, g Group, ifVersion int64) (Group, error)
}
