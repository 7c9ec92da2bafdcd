package service

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/credsign/credsign/secrets"
)

// Token text prefixes, so that leaked tokens are easy to find. A new kind
// of token gets its prefix here and a row in TokenKinds.
const (
	PrefixProvisioner = "csp_"
	PrefixDevice      = "csd_"
	PrefixAdmin       = "csa_"
)

// TokenKind is one kind of token text credsign mints.
type TokenKind struct {
	// Prefix starts every text of this kind.
	Prefix string
	// Role is the role its bearer acts in.
	Role string
	// Format is the shape of its text, as the docs show it.
	Format string
	// Storage says where its record is kept.
	Storage string
	// Expires says whether a token of this kind can have an expiry.
	Expires bool
	// Rotates says whether its bearer can exchange it for a new one.
	Rotates bool
	// authenticate resolves a text of this kind (that is not an admin
	// token) to its caller.
	authenticate func(a *Authenticator, ctx context.Context, text string) (Principal, error)
}

// TokenKinds is every kind of token text credsign mints: the one table
// that Authenticate dispatches on, that the access log's redaction,
// TestTokenKindsDocumented (docs/api.md) and anything else that looks for
// leaked tokens read. Every text is redacted from logs by its prefix.
var TokenKinds = []TokenKind{
	{Prefix: PrefixAdmin, Role: RoleAdmin, Format: "csa_<64 hex digits> (or any text of 16+ characters)",
		Storage: "none: the server's --admin-token(-file), compared by SHA-256",
		authenticate: func(*Authenticator, context.Context, string) (Principal, error) {
			return Principal{}, errUnauthorized() // an admin token was matched before
		}},
	{Prefix: PrefixProvisioner, Role: secrets.RoleProvisioner, Format: "csp_<64 hex digits>",
		Storage: "secrets.TokenStore, by the SHA-256 of the text", Expires: true,
		authenticate: (*Authenticator).authenticateRecord},
	{Prefix: PrefixDevice, Role: secrets.RoleDevice,
		Format:  "csd_2.<id>.<device, base64url>.<minted>.<MAC> or csd_3.<id>.<device>.<minted>.<expires>.<MAC> (csd_<64 hex digits> before)",
		Storage: "secrets.TokenStore, by the SHA-256 of the text; checked by its MAC and the revoked lists (KeyStore)", Expires: true, Rotates: true,
		authenticate: (*Authenticator).authenticateDevice},
	{Prefix: PrefixEnrolment, Role: RoleEnrolment, Format: "cse_<id>.<64 hex digits>",
		Storage: "secrets.EnrolmentTokenStore, by the ID in the text", Expires: true,
		authenticate: (*Authenticator).authenticateEnrolment},
}

// tokenKind returns the kind whose prefix starts text.
func tokenKind(text string) (TokenKind, bool) {
	for _, k := range TokenKinds {
		if len(text) > len(k.Prefix) && text[:len(k.Prefix)] == k.Prefix {
			return k, true
		}
	}
	return TokenKind{}, false
}

// Token names and lifetimes.
const (
	// MaxTokenName is the longest token name, in bytes.
	MaxTokenName = 128
	// DefaultMinTokenLifetime is the shortest lifetime a device or
	// provisioner token may be minted with (Config.MinTokenLifetime).
	DefaultMinTokenLifetime = 24 * time.Hour
	// MaxTokenLifetime is the longest.
	MaxTokenLifetime = 366 * 24 * time.Hour
	// DefaultRotationOverlap is how long a rotated device token keeps
	// working after its successor was minted (Config.RotationOverlap).
	DefaultRotationOverlap = 10 * time.Minute
)

// TokenRequest is what a minter asks for.
type TokenRequest struct {
	// Role is secrets.RoleProvisioner or secrets.RoleDevice (with DeviceID).
	Role     string
	DeviceID string
	// Name, optional, is what the minter calls the token.
	Name string
	// TTL, when not zero, is the token's lifetime: it expires TTL after it
	// is minted, and a device token's rotation gives its successor the same.
	TTL time.Duration
	// Scope, for a provisioner token, limits it (see CheckScope); nil:
	// unscoped.
	Scope *secrets.Scope
}

// checkTokenName reports what is wrong with a token name, nil if nothing.
func checkTokenName(name string) *FieldError {
	if len(name) > MaxTokenName {
		return &FieldError{Field: "name", Reason: fmt.Sprintf("longer than %d bytes", MaxTokenName)}
	}
	if !utf8.ValidString(name) {
		return &FieldError{Field: "name", Reason: "not UTF-8"}
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f {
			return &FieldError{Field: "name", Reason: "has control characters"}
		}
	}
	return nil
}

// checkLifetime reports what is wrong with a token lifetime, nil if nothing.
func (s *Service) checkLifetime(ttl time.Duration) *FieldError {
	if ttl != 0 && (ttl < s.minTokenLifetime || ttl > MaxTokenLifetime) {
		return &FieldError{Field: "ttlSeconds", Reason: fmt.Sprintf("must be %d to %d", int64(s.minTokenLifetime/time.Second), int64(MaxTokenLifetime/time.Second))}
	}
	return nil
}

// MintDeviceToken mints a token bound to device id, which must exist,
// without name or expiry.
func (s *Service) MintDeviceToken(ctx context.Context, caller Principal, id string) (Minted, error) {
	return s.MintToken(ctx, caller, TokenRequest{Role: secrets.RoleDevice, DeviceID: id})
}

// MintProvisionerToken mints a provisioner token without name or expiry,
// limited to scope when it is not nil.
func (s *Service) MintProvisionerToken(ctx context.Context, caller Principal, scope *secrets.Scope) (Minted, error) {
	return s.MintToken(ctx, caller, TokenRequest{Role: secrets.RoleProvisioner, Scope: scope})
}

// MintToken mints the token req asks for. The text in the result is shown
// once; only its hash is stored. A device token's device must exist.
//
// Cost: a device token one store read (the device); every token one token
// write (embedded store: one transaction; Vault: three writes, the ID, the
// record and the owner index).
func (s *Service) MintToken(ctx context.Context, caller Principal, req TokenRequest) (Minted, error) {
	var fields []FieldError
	if f := checkTokenName(req.Name); f != nil {
		fields = append(fields, *f)
	}
	if f := s.checkLifetime(req.TTL); f != nil {
		fields = append(fields, *f)
	}
	if len(fields) > 0 {
		return Minted{}, invalid(fields...)
	}
	if req.Role == secrets.RoleProvisioner {
		// The caller may not give more than it has: a scoped caller is
		// refused (the API lets only the admin mint).
		if caller.Scope != nil {
			return Minted{}, newError(CodeForbidden, "a scoped token may not mint provisioner tokens")
		}
		var err error
		if req.Scope, err = CheckScope(req.Scope); err != nil {
			return Minted{}, err
		}
	}
	now := s.now()
	if req.Role == secrets.RoleDevice {
		d, err := s.store.GetDevice(ctx, req.DeviceID)
		if err != nil {
			return Minted{}, fmt.Errorf("reading device: %w", err)
		}
		now = notBefore(now, d.CreatedAt)
	}
	return s.mintRecord(ctx, caller, req, now)
}

// mint creates, stores and audits a device token without name or expiry
// for device d.
func (s *Service) mint(ctx context.Context, caller Principal, d secrets.Device) (Minted, error) {
	return s.mintRecord(ctx, caller, TokenRequest{Role: secrets.RoleDevice, DeviceID: d.ID}, notBefore(s.now(), d.CreatedAt))
}

// notBefore is now, or the device's stamp created when now is before it: a
// device token minted for a device is never dated before the device, which
// the store stamps with its own clock (see Config.Now), so that the device
// accepts it.
func notBefore(now, created time.Time) time.Time {
	if now.Before(created) {
		return created
	}
	return now
}

// mintRecord creates, stores and audits the token req asks for, minted at now.
func (s *Service) mintRecord(ctx context.Context, caller Principal, req TokenRequest, now time.Time) (Minted, error) {
	m, err := s.storeNewToken(ctx, req, now)
	if err != nil {
		return Minted{}, err
	}
	auditMinted(ctx, caller, m.Record)
	return m, nil
}

// storeNewToken creates and stores the token req asks for, minted at now.
func (s *Service) storeNewToken(ctx context.Context, req TokenRequest, now time.Time) (Minted, error) {
	m, err := s.newTokenWith(ctx, req, now)
	if err != nil {
		return Minted{}, err
	}
	err = s.store.PutToken(ctx, m.Record)
	s.cache.forgetHash(m.Record.Hash)
	if err != nil {
		return Minted{}, fmt.Errorf("storing token: %w", err)
	}
	return m, nil
}

// newToken creates a token minted at now, without storing it.
func (s *Service) newToken(ctx context.Context, role, deviceID string, now time.Time) (Minted, error) {
	return s.newTokenWith(ctx, TokenRequest{Role: role, DeviceID: deviceID}, now)
}

// newTokenWith creates the token req asks for, minted at now, without
// storing it.
func (s *Service) newTokenWith(ctx context.Context, req TokenRequest, now time.Time) (Minted, error) {
	m, err := NewToken(req.Role, req.DeviceID, now)
	if err != nil {
		return Minted{}, err
	}
	m.Record.Name = req.Name
	m.Record.Scope = req.Scope
	if req.TTL > 0 {
		exp := m.Record.CreatedAt.Add(req.TTL)
		m.Record.ExpiresAt = &exp
		m.Record.LifetimeSeconds = int64(req.TTL / time.Second)
	}
	if req.Role == secrets.RoleDevice {
		// A token that carries its binding (see deviceTokens).
		if m.Text, err = s.devTokens.mint(ctx, m.Record); err != nil {
			return Minted{}, fmt.Errorf("minting a device token: %w", err)
		}
		m.Record.Hash = Hash(m.Text)
	}
	return m, nil
}

// auditMinted records that caller created token t.
func auditMinted(ctx context.Context, caller Principal, t secrets.Token) {
	ev := audit(ctx, caller, "token.created").Str("createdTokenId", t.ID).Str("createdRole", t.Role)
	if t.DeviceID != "" {
		ev = ev.Str("deviceId", t.DeviceID)
	}
	if t.Scope != nil {
		ev = ev.Strs("scopeGroups", t.Scope.Groups).Interface("scopeLabels", t.Scope.Labels)
	}
	if t.ExpiresAt != nil {
		ev = ev.Time("expiresAt", *t.ExpiresAt)
	}
	ev.Msg("audit")
}

// TokenState is what a token can do now.
type TokenState string

// Token states.
const (
	TokenActive  TokenState = "active"
	TokenRotated TokenState = "rotated" // exchanged for a successor; works until the overlap ends
	TokenExpired TokenState = "expired"
	TokenRevoked TokenState = "revoked"
)

// TokenInfo is what the API shows of a token: its record (never its text
// nor its hash) and its state.
type TokenInfo struct {
	secrets.Token
	State TokenState
}

// tokenInfo describes t as of now.
func (s *Service) tokenInfo(t secrets.Token, now time.Time) TokenInfo {
	t.Hash = ""
	st := TokenActive
	switch {
	case t.RevokedAt != nil:
		st = TokenRevoked
	case t.ReplacedAt != nil:
		st = TokenRotated
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		st = TokenExpired
	}
	return TokenInfo{Token: t, State: st}
}

// TokenPage is one page of tokens; Next is the cursor of the following
// page, "" on the last.
type TokenPage struct {
	Tokens []TokenInfo
	Next   string
}

// ListTokens lists the provisioner tokens (role secrets.RoleProvisioner)
// or the tokens of device deviceID (role secrets.RoleDevice; the device
// must exist), sorted by ID (so by mint time), a page at a time.
//
// Cost: a device's tokens one read of the device; then the store's
// ListTokens (embedded store: one read transaction over the owner index;
// Vault: one LIST and two reads per token on the page).
func (s *Service) ListTokens(ctx context.Context, role, deviceID, after string, limit int) (TokenPage, error) {
	if role == secrets.RoleDevice {
		if _, err := s.store.GetDevice(ctx, deviceID); err != nil {
			return TokenPage{}, fmt.Errorf("reading device: %w", err)
		}
	}
	p, err := s.store.ListTokens(ctx, secrets.TokenListOptions{Role: role, DeviceID: deviceID, After: after, Limit: limit})
	if err != nil {
		return TokenPage{}, fmt.Errorf("listing tokens: %w", err)
	}
	now := s.now()
	out := TokenPage{Tokens: make([]TokenInfo, 0, len(p.Tokens)), Next: p.Next}
	for _, t := range p.Tokens {
		out.Tokens = append(out.Tokens, s.tokenInfo(t, now))
	}
	return out, nil
}

// ListEnrolmentTokens lists the enrolment tokens of group, which must
// exist, sorted by ID, a page at a time. Tokens of an earlier group of the
// same ID are left out.
//
// Cost: one read of the group, then the store's ListEnrolmentTokens
// (embedded store: one read transaction over the enrolment token records;
// Vault: one LIST of keys/ and one read per enrolment token after the
// cursor until the page is full).
func (s *Service) ListEnrolmentTokens(ctx context.Context, group, after string, limit int) ([]EnrolmentToken, string, error) {
	g, err := s.store.GetGroup(ctx, group)
	if err != nil {
		return nil, "", fmt.Errorf("reading group: %w", err)
	}
	limit = secrets.PageLimit(limit)
	// Read on past tokens of an earlier group, so that a page is empty
	// only at the end.
	var out []EnrolmentToken
	for {
		p, err := s.store.ListEnrolmentTokens(ctx, group, after, limit)
		if err != nil {
			return nil, "", fmt.Errorf("listing enrolment tokens: %w", err)
		}
		for _, r := range p.Tokens {
			if !sameGroup(r, g) {
				continue
			}
			if len(out) == limit {
				return out, out[limit-1].ID, nil
			}
			out = append(out, publicEnrolment(r))
		}
		if p.Next == "" {
			return out, "", nil
		}
		after = p.Next
	}
}

// RevokeDeviceToken revokes token tokenID of device id; a token of another
// device or role is CodeNotFound.
func (s *Service) RevokeDeviceToken(ctx context.Context, caller Principal, id, tokenID string) error {
	t, err := s.store.GetToken(ctx, tokenID)
	if err != nil {
		return fmt.Errorf("reading token: %w", err)
	}
	if t.Role != secrets.RoleDevice || t.DeviceID != id {
		return newError(CodeNotFound, "this device has no such token")
	}
	return s.revoke(ctx, caller, t)
}

// RevokeToken revokes any token by its ID.
func (s *Service) RevokeToken(ctx context.Context, caller Principal, tokenID string) error {
	t, err := s.store.GetToken(ctx, tokenID)
	if err != nil {
		return fmt.Errorf("reading token: %w", err)
	}
	return s.revoke(ctx, caller, t)
}

func (s *Service) revoke(ctx context.Context, caller Principal, t secrets.Token) error {
	if t.Role == secrets.RoleDevice {
		// First on the list every replica checks device tokens against.
		if err := s.devTokens.revoke(ctx, t.ID, time.Time{}); err != nil {
			return fmt.Errorf("revoking token: %w", err)
		}
	}
	err := s.store.RevokeToken(ctx, t.ID, s.now().UTC())
	s.cache.forgetHash(t.Hash)
	if err != nil {
		return fmt.Errorf("revoking token: %w", err)
	}
	ev := audit(ctx, caller, "token.revoked").Str("revokedTokenId", t.ID).Str("revokedRole", t.Role)
	if t.DeviceID != "" {
		ev = ev.Str("deviceId", t.DeviceID)
	}
	ev.Msg("audit")
	return nil
}

// errReused is the answer to a rotation with a token that was rotated
// already.
func errReused() *Error {
	return newError(CodeUnauthorized, "token rotated already: this copy is refused and its successor revoked; re-enrol")
}

// RotateDeviceToken exchanges the caller's device token, its only
// credential, for a new token of the same device with the same name and
// lifetime (counted from now). The old token keeps working for the
// rotation overlap (Config.RotationOverlap), then is refused. A token
// rotated already is never rotated again: such an attempt is refused, and
// the token's successors are revoked too, so that of a stolen copy and
// the device, at most one keeps a working token (and the device, refused,
// says so in its log).
//
// Cost: reads of the token (Vault: two) and of the device; the new token's
// write (embedded store: one transaction; Vault: three writes); the old
// record marked replaced (a compare-and-set: embedded store one
// transaction, Vault two reads and a write); one read and one write of
// the revoked list the old token falls in (v2/v3 tokens).
func (s *Service) RotateDeviceToken(ctx context.Context, caller Principal, id string) (Minted, error) {
	if caller.Role != secrets.RoleDevice || caller.DeviceID != id {
		return Minted{}, newError(CodeForbidden, "only a device token rotates, itself")
	}
	old, err := s.store.GetToken(ctx, caller.TokenID)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return Minted{}, errUnauthorized()
	case err != nil:
		return Minted{}, fmt.Errorf("reading token: %w", err)
	case old.RevokedAt != nil:
		return Minted{}, errUnauthorized()
	case old.ReplacedBy != "":
		return Minted{}, s.reused(ctx, caller, old)
	}
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		return Minted{}, fmt.Errorf("reading device: %w", err)
	}
	if old.CreatedAt.Before(d.CreatedAt) {
		// Minted for an earlier device of the same ID: it must not mint a
		// token the device of today would accept.
		return Minted{}, newError(CodeForbidden, "this token was minted for a device that has since been deleted")
	}
	now := notBefore(s.now(), d.CreatedAt)
	req := TokenRequest{Role: secrets.RoleDevice, DeviceID: id, Name: old.Name, TTL: time.Duration(old.LifetimeSeconds) * time.Second}
	m, err := s.storeNewToken(ctx, req, now)
	if err != nil {
		return Minted{}, err
	}
	if _, err := s.store.ReplaceToken(ctx, old.ID, m.Record.ID, now); err != nil {
		// Never hand out a successor that is not recorded as one.
		if rerr := s.revoke(context.WithoutCancel(ctx), caller, m.Record); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if errors.Is(err, secrets.ErrConflict) {
			// Another rotation of this token won the race: reuse.
			if cur, gerr := s.store.GetToken(ctx, old.ID); gerr == nil && cur.ReplacedBy != "" {
				return Minted{}, s.reused(ctx, caller, cur)
			}
			return Minted{}, errUnauthorized()
		}
		return Minted{}, fmt.Errorf("rotating token: %w", err)
	}
	s.cache.forgetHash(old.Hash)
	until := now.Add(s.rotationOverlap)
	if err := s.devTokens.revoke(ctx, old.ID, until); err != nil {
		// The record says replaced (record tokens stop at the overlap);
		// a v2/v3 text would be refused only at its expiry.
		return Minted{}, fmt.Errorf("retiring the rotated token: %w", err)
	}
	ev := audit(ctx, caller, "token.rotated").Str("deviceId", id).Str("createdTokenId", m.Record.ID).Time("oldValidUntil", until)
	if m.Record.ExpiresAt != nil {
		ev = ev.Time("expiresAt", *m.Record.ExpiresAt)
	}
	ev.Msg("audit")
	return m, nil
}

// reused handles a rotation with token t, which was rotated already:
// every successor is revoked, the attempt audited and refused.
func (s *Service) reused(ctx context.Context, caller Principal, t secrets.Token) error {
	ctx = context.WithoutCancel(ctx)
	var revoked []string
	for next, n := t.ReplacedBy, 0; next != "" && n < 64; n++ {
		succ, err := s.store.GetToken(ctx, next)
		if err != nil {
			return fmt.Errorf("reading the successor of a reused token: %w", err)
		}
		if succ.RevokedAt == nil {
			if err := s.revoke(ctx, caller, succ); err != nil {
				return err
			}
			revoked = append(revoked, succ.ID)
		}
		next = succ.ReplacedBy
	}
	audit(ctx, caller, "token.reuse_refused").Str("deviceId", t.DeviceID).Strs("revokedTokenIds", revoked).Msg("audit")
	return errReused()
}
