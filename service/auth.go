package service

// Callers authenticate by bearer token. Token texts are random (256 bits),
// carry a prefix that secret scanners can recognise (TokenKinds in
// tokens.go lists them, with what else is known of each kind),
// are shown once and are stored only as their SHA-256 hash.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/credsign/credsign/secrets"
)

// RoleAdmin is the role of the admin token given to the server at start.
// The other roles are secrets.RoleProvisioner and secrets.RoleDevice.
const RoleAdmin = "admin"

// AdminTokenID is the token ID that audit events and logs show for the admin.
const AdminTokenID = "admin"

// TokenRandomHexDigits is the length of the random part of every minted
// token text (256 bits as hex digits): a run of that many hex digits looks
// like a token even without its prefix.
const TokenRandomHexDigits = 64

// Principal is an authenticated caller.
type Principal struct {
	// TokenID identifies the token (never its text); AdminTokenID for the admin.
	TokenID string
	// Role is RoleAdmin, secrets.RoleProvisioner, secrets.RoleDevice or
	// RoleEnrolment.
	Role string
	// DeviceID is the device a device token is bound to.
	DeviceID string
	// CreatedAt is when the token was minted (zero for the admin).
	CreatedAt time.Time
	// Scope limits a scoped provisioner token (see scope.go); nil for
	// every other caller.
	Scope *secrets.Scope
	// enrol is the enrolment token record Authenticate read, for Enrol.
	enrol *enrolState
	// KeyID is the device key that signed the caller's proof of
	// possession, "" for a bearer token.
	KeyID string
	// proofKey is the key of an enrolment's proof, to bind to the device.
	proofKey *jose.JSONWebKey
}

// Hash returns the lowercase hex SHA-256 of a token text, as stored.
func Hash(token string) string {
	sum := tokenSum(token)
	return hex.EncodeToString(sum[:])
}

// tokenSum is the SHA-256 of a token text. A text no longer than a
// bearer token may be (ParseBearer) is hashed from a copy on the stack:
// authenticating allocates nothing for it.
func tokenSum(token string) [sha256.Size]byte {
	var buf [maxBearerLen]byte
	if len(token) > len(buf) {
		return sha256.Sum256([]byte(token))
	}
	return sha256.Sum256(buf[:copy(buf[:], token)])
}

// Minted is a newly created token: the record to store and the text to show once.
type Minted struct {
	Record secrets.Token
	Text   string
}

// NewToken mints a token for role (secrets.RoleProvisioner or
// secrets.RoleDevice, with deviceID for the latter).
func NewToken(role, deviceID string, now time.Time) (Minted, error) {
	var prefix string
	switch role {
	case secrets.RoleProvisioner:
		prefix = PrefixProvisioner
	case secrets.RoleDevice:
		prefix = PrefixDevice
	default:
		return Minted{}, fmt.Errorf("minting a token: unknown role %q", role)
	}
	text, err := random(prefix, TokenRandomHexDigits/2)
	if err != nil {
		return Minted{}, fmt.Errorf("minting a token: %w", err)
	}
	id, err := tokenID(now)
	if err != nil {
		return Minted{}, fmt.Errorf("minting a token ID: %w", err)
	}
	return Minted{
		Record: secrets.Token{ID: id, Hash: Hash(text), Role: role, DeviceID: deviceID, CreatedAt: now.UTC()},
		Text:   text,
	}, nil
}

// NewAdminToken returns a random admin token for development mode.
func NewAdminToken() (string, error) {
	t, err := random(PrefixAdmin, TokenRandomHexDigits/2)
	if err != nil {
		return "", fmt.Errorf("generating the admin token: %w", err)
	}
	return t, nil
}

// tokenID returns a new token ID: the mint time in Unix nanoseconds as 16
// hexadecimal digits, then 8 random ones. IDs minted later sort later, so
// the embedded store appends new token records at the end of its B+tree
// instead of dirtying a random page for each (a bulk import writes a page,
// not a thousand); the random part keeps IDs minted in the same nanosecond
// apart.
func tokenID(now time.Time) (string, error) {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func random(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(b), nil
}

// maxBearerLen is the longest token ParseBearer accepts.
const maxBearerLen = 512

// ParseBearer extracts the token from an Authorization header value of the
// form "Bearer <token>" (scheme case-insensitive). It refuses empty tokens
// and tokens with characters outside printable ASCII.
func ParseBearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || len(token) > maxBearerLen {
		return "", false
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c > '~' {
			return "", false
		}
	}
	return token, true
}

// Authenticator resolves bearer tokens to principals.
type Authenticator struct {
	// admins holds the SHA-256 of every valid admin token; SetAdminTokens
	// swaps the whole set at once.
	admins atomic.Pointer[[][sha256.Size]byte]
	tokens tokenFinder
	// v2 checks device tokens that carry their binding; nil: none are accepted.
	v2 *deviceTokens
	// enrolments reads enrolment token records, caching unknown IDs and
	// known hashes; nil: none are accepted.
	enrolments *cache
	// rotationOverlap is how long a rotated token keeps working.
	rotationOverlap time.Duration
	// now is the service's clock (Config.Now).
	now func() time.Time
}

// tokenFinder finds token records by the hash of their text.
type tokenFinder interface {
	TokenByHash(ctx context.Context, hash string) (secrets.Token, error)
}

// NewAuthenticator returns an Authenticator that accepts adminToken as the
// admin and looks every other token up in tokens.
func NewAuthenticator(adminToken string, tokens tokenFinder) (*Authenticator, error) {
	a := &Authenticator{tokens: tokens, now: time.Now}
	if err := a.SetAdminTokens([]string{adminToken}); err != nil {
		return nil, err
	}
	return a, nil
}

// CheckAdminToken reports why t cannot be an admin token (nil: it can).
// The error never holds the token's text.
func CheckAdminToken(t string) error {
	if len(t) < 16 {
		return errors.New("the admin token must be at least 16 characters")
	}
	if _, ok := ParseBearer("Bearer " + t); !ok {
		return errors.New("the admin token must be printable ASCII without spaces")
	}
	return nil
}

// SetAdminTokens makes tokens (one or more) the admin tokens, all valid at
// once, in place of the ones before. If any is unfit (see CheckAdminToken)
// or there is none, it changes nothing.
func (a *Authenticator) SetAdminTokens(tokens []string) error {
	if len(tokens) == 0 {
		return errors.New("no admin token")
	}
	hashes := make([][sha256.Size]byte, 0, len(tokens))
	for i, t := range tokens {
		if err := CheckAdminToken(t); err != nil {
			if len(tokens) == 1 {
				return err
			}
			return fmt.Errorf("admin token %d of %d: %w", i+1, len(tokens), err)
		}
		hashes = append(hashes, sha256.Sum256([]byte(t)))
	}
	a.admins.Store(&hashes)
	return nil
}

// isAdmin compares sum with every admin token's hash, each in constant time.
func (a *Authenticator) isAdmin(sum [sha256.Size]byte) bool {
	match := 0
	for _, h := range *a.admins.Load() {
		match |= subtle.ConstantTimeCompare(sum[:], h[:])
	}
	return match == 1
}

// errUnauthorized is the one answer to every failed authentication, so that
// a caller cannot tell an unknown token from a revoked one.
func errUnauthorized() *Error {
	return newError(CodeUnauthorized, "a valid bearer token is required")
}

// Authenticate resolves the Authorization header value to a principal. It
// returns a CodeUnauthorized *Error for a missing, unknown or revoked token and
// a wrapped store error when the store cannot answer.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (Principal, error) {
	token, ok := ParseBearer(header)
	if !ok {
		return Principal{}, errUnauthorized()
	}
	sum := tokenSum(token)
	if a.isAdmin(sum) {
		return Principal{TokenID: AdminTokenID, Role: RoleAdmin}, nil
	}
	kind, ok := tokenKind(token)
	if !ok {
		return Principal{}, errUnauthorized()
	}
	return kind.authenticate(a, ctx, token)
}

// authenticateDevice checks a device token: one that carries its binding
// by its MAC (see deviceTokens), one from before by its record.
func (a *Authenticator) authenticateDevice(ctx context.Context, token string) (Principal, error) {
	if a.v2 != nil && a.v2.carriesBinding(token) {
		return a.v2.check(ctx, token) // no store read: see deviceTokens
	}
	return a.authenticateRecord(ctx, token)
}

// errExpired is the answer to a token past its expiry: the one refusal
// that says why, so that a device can log what to do.
func errExpired() *Error {
	return newError(CodeUnauthorized, "token expired: re-enrol")
}

// errRotated is the answer to a rotated token after the overlap.
func errRotated() *Error {
	return newError(CodeUnauthorized, "token rotated: use its successor, or re-enrol")
}

// authenticateRecord checks a token by its record, found by the hash of
// its text: not revoked, not expired, not rotated longer ago than the
// overlap.
func (a *Authenticator) authenticateRecord(ctx context.Context, token string) (Principal, error) {
	rec, err := a.tokens.TokenByHash(ctx, Hash(token))
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return Principal{}, errUnauthorized()
	case err != nil:
		return Principal{}, fmt.Errorf("looking up a token: %w", err)
	case rec.RevokedAt != nil:
		return Principal{}, errUnauthorized()
	case rec.ExpiresAt != nil && !a.now().Before(*rec.ExpiresAt):
		return Principal{}, errExpired()
	case rec.ReplacedAt != nil && !a.now().Before(rec.ReplacedAt.Add(a.rotationOverlap)):
		return Principal{}, errRotated()
	}
	p := Principal{TokenID: rec.ID, Role: rec.Role, DeviceID: rec.DeviceID, CreatedAt: rec.CreatedAt}
	if rec.Role == secrets.RoleProvisioner {
		p.Scope = rec.Scope
	}
	return p, nil
}
