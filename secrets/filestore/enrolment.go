package filestore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
)

// Enrolment token records live in bucketKeys under the names
// secrets.EnrolmentKeyPrefix + ID, where credsign kept them before they
// were typed records: files written then are read as they are.

// GetEnrolmentToken implements secrets.EnrolmentTokenStore. Cost: one read
// transaction, one lookup.
func (s *Store) GetEnrolmentToken(ctx context.Context, id string) (secrets.EnrolmentToken, error) {
	if !secrets.ValidID(id) {
		return secrets.EnrolmentToken{}, fmt.Errorf("filestore: get enrolment token %.64q: %w", id, secrets.ErrInvalid)
	}
	var t secrets.EnrolmentToken
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b, v, err := s.readKey(tx, secrets.EnrolmentKeyPrefix+id)
		if err != nil {
			return err
		}
		t, err = secrets.DecodeEnrolmentToken(id, b, v)
		return err
	})
	if err != nil {
		return secrets.EnrolmentToken{}, fmt.Errorf("filestore: get enrolment token %q: %w", id, err)
	}
	return t, nil
}

// PutEnrolmentToken implements secrets.EnrolmentTokenStore. Cost: one
// record sealed and written in a shared read-write transaction.
func (s *Store) PutEnrolmentToken(ctx context.Context, t secrets.EnrolmentToken, ifVersion int64) (int64, error) {
	return secrets.PutEnrolmentTokenKey(ctx, s, "filestore", t, ifVersion)
}

// ListEnrolmentTokens implements secrets.EnrolmentTokenStore: one read
// transaction, a cursor over the enrolment token records after the cursor
// (of every group: they are few), each opened to see its group.
func (s *Store) ListEnrolmentTokens(ctx context.Context, group, after string, limit int) (secrets.EnrolmentTokenPage, error) {
	if !secrets.ValidID(group) {
		return secrets.EnrolmentTokenPage{}, fmt.Errorf("filestore: list enrolment tokens: %w", secrets.ErrInvalid)
	}
	limit = secrets.PageLimit(limit)
	var page secrets.EnrolmentTokenPage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		page.Tokens, page.Next, err = secrets.CollectPage(keysAfter(tx, bucketKeys, secrets.EnrolmentKeyPrefix, after), limit,
			func(id string) (secrets.EnrolmentToken, bool, error) {
				if !secrets.ValidID(id) {
					return secrets.EnrolmentToken{}, false, nil
				}
				b, v, err := s.readKey(tx, secrets.EnrolmentKeyPrefix+id)
				if err != nil {
					return secrets.EnrolmentToken{}, false, err
				}
				t, err := secrets.DecodeEnrolmentToken(id, b, v)
				return t, err == nil && t.Group == group, err
			})
		return err
	})
	if err != nil {
		return secrets.EnrolmentTokenPage{}, fmt.Errorf("filestore: list enrolment tokens: %w", err)
	}
	return page, nil
}
