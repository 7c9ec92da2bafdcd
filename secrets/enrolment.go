package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// EnrolmentToken is a stored enrolment token: what devices of one group
// present to enrol themselves. Only the SHA-256 of its text is kept.
// Records written before Name existed read with it empty. Stores keep the
// record as JSON, so a field added here later is kept by both without a
// change.
type EnrolmentToken struct {
	ID        string     `json:"id"`
	Hash      string     `json:"hash"` // lowercase hex SHA-256 of the text
	Group     string     `json:"group"`
	Name      string     `json:"name,omitempty"`
	MaxUses   int64      `json:"maxUses"`
	Uses      int64      `json:"uses"`
	ExpiresAt time.Time  `json:"expiresAt"`
	IDPattern string     `json:"idPattern,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	// GroupCreatedAt is the CreatedAt of the group the token was minted
	// for: a group of the same ID created again later is another group.
	// Zero in records written before it was kept.
	GroupCreatedAt time.Time `json:"groupCreatedAt"`
	// Failures counts the enrolments that called the cloud's registration
	// and failed (their use was given back).
	Failures int64 `json:"failures,omitempty"`
	// Version starts at 1 and increases by one on every successful write;
	// the store sets it (it is not part of the stored JSON).
	Version int64 `json:"-"`
}

// EnrolmentTokenPage is one page of a group's enrolment tokens, sorted by
// ID. Next is the cursor for the following page, empty on the last page.
type EnrolmentTokenPage struct {
	Tokens []EnrolmentToken
	Next   string
}

// EnrolmentTokenStore keeps enrolment token records. Writes are
// compare-and-set on Version, so that uses are counted exactly when many
// devices enrol with one token at once.
type EnrolmentTokenStore interface {
	// GetEnrolmentToken returns the record (Version set) or ErrNotFound.
	GetEnrolmentToken(ctx context.Context, id string) (EnrolmentToken, error)
	// PutEnrolmentToken writes t if the stored version is ifVersion (0:
	// t.ID must not exist), else ErrConflict; it returns the new version.
	PutEnrolmentToken(ctx context.Context, t EnrolmentToken, ifVersion int64) (int64, error)
	// ListEnrolmentTokens returns up to limit (0: 100) enrolment tokens of
	// group whose IDs sort after after, sorted by ID; revoked, expired and
	// used-up ones included.
	ListEnrolmentTokens(ctx context.Context, group, after string, limit int) (EnrolmentTokenPage, error)
}

// EnrolmentKeyPrefix starts the name an enrolment token record is kept
// under in both stores, among the KeyStore's values: the layout credsign
// used before enrolment tokens were typed records, kept so that stores
// written then are read as they are (nothing to migrate). The KeyStore
// methods must not be used on these names.
const EnrolmentKeyPrefix = "enrolment-token."

// EncodeEnrolmentToken is the stored form of t (JSON, without Version).
func EncodeEnrolmentToken(t EnrolmentToken) ([]byte, error) {
	if !ValidID(t.ID) || !ValidHash(t.Hash) || !ValidID(t.Group) {
		return nil, fmt.Errorf("enrolment token %.64q: bad ID, hash or group: %w", t.ID, ErrInvalid)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt = t.ExpiresAt.UTC()
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encoding enrolment token %q: %w", t.ID, err)
	}
	return b, nil
}

// PutEnrolmentTokenKey is EnrolmentTokenStore.PutEnrolmentToken for a
// store that keeps enrolment tokens among the values of its KeyStore, ks,
// as both stores do (see EnrolmentKeyPrefix): one PutKey of the encoded
// record, under the same compare-and-set rule. An invalid t gives an error
// wrapping ErrInvalid that names the store (as its own errors do).
func PutEnrolmentTokenKey(ctx context.Context, ks KeyStore, store string, t EnrolmentToken, ifVersion int64) (int64, error) {
	b, err := EncodeEnrolmentToken(t)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", store, err)
	}
	defer clear(b)
	return ks.PutKey(ctx, EnrolmentKeyPrefix+t.ID, b, ifVersion)
}

// DecodeEnrolmentToken reads the stored form of enrolment token id.
func DecodeEnrolmentToken(id string, b []byte, version int64) (EnrolmentToken, error) {
	var t EnrolmentToken
	if err := json.Unmarshal(b, &t); err != nil || t.ID != id {
		return EnrolmentToken{}, fmt.Errorf("enrolment token %q: the record does not decode", id)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt = t.ExpiresAt.UTC()
	if t.RevokedAt != nil {
		at := t.RevokedAt.UTC()
		t.RevokedAt = &at
	}
	t.Version = version
	return t, nil
}

// EnrolmentTokenID returns the token ID a KeyStore name holds, and whether
// it names an enrolment token record.
func EnrolmentTokenID(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, EnrolmentKeyPrefix)
	return id, ok && ValidID(id)
}
