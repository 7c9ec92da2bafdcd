package vaultstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/credsign/credsign/secrets"
)

// Enrolment token records live at <prefix>keys/<secrets.EnrolmentKeyPrefix><id>,
// as KeyStore values (base64 of their JSON), where credsign kept them
// before they were typed records: stores written then are read as they are.

// GetEnrolmentToken implements secrets.EnrolmentTokenStore. Cost: one
// Vault read.
func (s *Store) GetEnrolmentToken(ctx context.Context, id string) (secrets.EnrolmentToken, error) {
	if !secrets.ValidID(id) {
		return secrets.EnrolmentToken{}, fmt.Errorf("vaultstore: get enrolment token %.64q: %w", id, secrets.ErrInvalid)
	}
	b, v, err := s.GetKey(ctx, secrets.EnrolmentKeyPrefix+id)
	if err != nil {
		return secrets.EnrolmentToken{}, err
	}
	t, err := secrets.DecodeEnrolmentToken(id, b, v)
	if err != nil {
		return secrets.EnrolmentToken{}, fmt.Errorf("vaultstore: %w", err)
	}
	return t, nil
}

// PutEnrolmentToken implements secrets.EnrolmentTokenStore with KV
// check-and-set. Cost: one Vault write.
func (s *Store) PutEnrolmentToken(ctx context.Context, t secrets.EnrolmentToken, ifVersion int64) (int64, error) {
	return secrets.PutEnrolmentTokenKey(ctx, s, "vaultstore", t, ifVersion)
}

// ListEnrolmentTokens implements secrets.EnrolmentTokenStore. Cost: one
// LIST of keys/ (the service's keys and every enrolment token), then one
// read per enrolment token after the cursor, of any group, until the page
// is full: enrolment tokens are few.
func (s *Store) ListEnrolmentTokens(ctx context.Context, group, after string, limit int) (secrets.EnrolmentTokenPage, error) {
	if !secrets.ValidID(group) {
		return secrets.EnrolmentTokenPage{}, fmt.Errorf("vaultstore: list enrolment tokens: %w", secrets.ErrInvalid)
	}
	limit = secrets.PageLimit(limit)
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	keys, err := s.list(ctx, "keys/")
	if err != nil {
		return secrets.EnrolmentTokenPage{}, fmt.Errorf("vaultstore: list enrolment tokens: %w", err)
	}
	var ids []string
	for _, k := range keys {
		if id, ok := secrets.EnrolmentTokenID(k); ok && id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var page secrets.EnrolmentTokenPage
	page.Tokens, page.Next, err = secrets.CollectPage(slices.Values(ids), limit, func(id string) (secrets.EnrolmentToken, bool, error) {
		e, err := s.read(ctx, keyRel(secrets.EnrolmentKeyPrefix+id))
		if err != nil || e.data == nil {
			return secrets.EnrolmentToken{}, false, err
		}
		t, err := decodeEnrolment(id, e)
		return t, err == nil && t.Group == group, err
	})
	if err != nil {
		return secrets.EnrolmentTokenPage{}, fmt.Errorf("vaultstore: list enrolment tokens: %w", err)
	}
	return page, nil
}

// decodeEnrolment decodes the KeyStore record of enrolment token id.
func decodeEnrolment(id string, e kvEntry) (secrets.EnrolmentToken, error) {
	var kd keyData
	if err := json.Unmarshal(e.data, &kd); err != nil {
		return secrets.EnrolmentToken{}, fmt.Errorf("enrolment token %q: decode record: %w", id, err)
	}
	b, err := base64.StdEncoding.DecodeString(kd.Value)
	if err != nil {
		return secrets.EnrolmentToken{}, fmt.Errorf("enrolment token %q: the value is not base64", id)
	}
	return secrets.DecodeEnrolmentToken(id, b, e.version)
}
