package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/internal/metrics"
	"github.com/credsign/credsign/secrets"
)

// RoleEnrolment is the role of an enrolment token: it may enrol devices in
// its group (POST /v1/enrol) and do nothing else.
const RoleEnrolment = "enrolment"

// PrefixEnrolment starts the text of every enrolment token:
//
//	cse_<token ID>.<64 hex digits>
//
// The ID inside the text finds the record in one read (KeyStore name
// enrolmentKeyPrefix+ID); the record keeps the SHA-256 of the text, which
// is compared in constant time.
const PrefixEnrolment = "cse_"

// enrolmentKeyPrefix names enrolment token records in the KeyStore. A
// record is JSON (enrolmentRecord); its KeyStore version makes counting
// uses a compare-and-set.
const enrolmentKeyPrefix = "enrolment-token."

// Enrolment token limits.
const (
	MaxEnrolmentUses   = 1_000_000
	MaxEnrolmentTTL    = 365 * 24 * time.Hour
	maxIDPatternLength = 256
	// casAttempts bounds the compare-and-set rounds of one use counted or
	// released, when many devices enrol with the same token at once.
	casAttempts = 64
)

var validTokenID = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

// enrolmentRecord is what the store keeps of an enrolment token.
type enrolmentRecord struct {
	ID        string     `json:"id"`
	Hash      string     `json:"hash"` // lowercase hex SHA-256 of the text
	Group     string     `json:"group"`
	MaxUses   int64      `json:"maxUses"`
	Uses      int64      `json:"uses"`
	ExpiresAt time.Time  `json:"expiresAt"`
	IDPattern string     `json:"idPattern,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// EnrolmentToken is what the API shows of an enrolment token (never its
// text, which only the minting response carries).
type EnrolmentToken struct {
	ID        string
	Group     string
	MaxUses   int64
	Uses      int64
	ExpiresAt time.Time
	IDPattern string
	CreatedAt time.Time
	RevokedAt *time.Time
}

func (r enrolmentRecord) public() EnrolmentToken {
	return EnrolmentToken{ID: r.ID, Group: r.Group, MaxUses: r.MaxUses, Uses: r.Uses, ExpiresAt: r.ExpiresAt,
		IDPattern: r.IDPattern, CreatedAt: r.CreatedAt, RevokedAt: r.RevokedAt}
}

// EnrolmentTokenRequest is what a provisioner asks for.
type EnrolmentTokenRequest struct {
	// MaxUses is how many devices the token may enrol (1 to MaxEnrolmentUses).
	MaxUses int64
	// TTL or ExpiresAt (exactly one) says when the token stops enrolling.
	TTL       time.Duration
	ExpiresAt *time.Time
	// IDPattern, when set, is an RE2 expression every enrolled device ID
	// must match as a whole.
	IDPattern string
}

// enrolState is what Authenticate read of an enrolment token, handed to
// Enrol so that enrolling costs no second read of it.
type enrolState struct {
	rec     enrolmentRecord
	version int64
}

// compilePattern compiles an ID pattern anchored at both ends.
func compilePattern(p string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + p + `)$`)
}

// CreateEnrolmentToken mints an enrolment token for group, which must
// exist. The text is returned once; the store keeps its hash.
//
// Cost: one store read (the group), one write.
func (s *Service) CreateEnrolmentToken(ctx context.Context, caller Principal, group string, req EnrolmentTokenRequest) (EnrolmentToken, string, error) {
	now := time.Now().UTC()
	var fields []FieldError
	if req.MaxUses < 1 || req.MaxUses > MaxEnrolmentUses {
		fields = append(fields, FieldError{Field: "maxUses", Reason: fmt.Sprintf("must be 1 to %d", MaxEnrolmentUses)})
	}
	var expires time.Time
	switch {
	case req.ExpiresAt != nil && req.TTL != 0:
		fields = append(fields, FieldError{Field: "expiresAt", Reason: "give ttlSeconds or expiresAt, not both"})
	case req.ExpiresAt != nil:
		expires = req.ExpiresAt.UTC()
		if !expires.After(now) || expires.Sub(now) > MaxEnrolmentTTL {
			fields = append(fields, FieldError{Field: "expiresAt", Reason: "must be in the future and within a year"})
		}
	case req.TTL > 0 && req.TTL <= MaxEnrolmentTTL:
		expires = now.Add(req.TTL)
	case req.TTL != 0:
		fields = append(fields, FieldError{Field: "ttlSeconds", Reason: "must be 1 to 31536000"})
	default:
		fields = append(fields, FieldError{Field: "ttlSeconds", Reason: "required (or expiresAt)"})
	}
	if req.IDPattern != "" {
		if len(req.IDPattern) > maxIDPatternLength {
			fields = append(fields, FieldError{Field: "idPattern", Reason: "longer than 256 bytes"})
		} else if _, err := compilePattern(req.IDPattern); err != nil {
			fields = append(fields, FieldError{Field: "idPattern", Reason: "not a valid RE2 regular expression"})
		}
	}
	if len(fields) > 0 {
		return EnrolmentToken{}, "", invalid(fields...)
	}
	if _, err := s.store.GetGroup(ctx, group); err != nil {
		return EnrolmentToken{}, "", fmt.Errorf("reading group: %w", err)
	}
	id, err := random("", 10)
	if err != nil {
		return EnrolmentToken{}, "", fmt.Errorf("minting an enrolment token ID: %w", err)
	}
	secret, err := random("", TokenRandomHexDigits/2)
	if err != nil {
		return EnrolmentToken{}, "", fmt.Errorf("minting an enrolment token: %w", err)
	}
	text := PrefixEnrolment + id + "." + secret
	rec := enrolmentRecord{ID: id, Hash: Hash(text), Group: group, MaxUses: req.MaxUses, ExpiresAt: expires,
		IDPattern: req.IDPattern, CreatedAt: now}
	if _, err := s.putEnrolment(ctx, rec, 0); err != nil {
		return EnrolmentToken{}, "", err
	}
	audit(ctx, caller, "enrolment_token.created").Str("enrolmentTokenId", id).Str("group", group).
		Int64("maxUses", rec.MaxUses).Time("expiresAt", expires).Msg("audit")
	return rec.public(), text, nil
}

func (s *Service) putEnrolment(ctx context.Context, rec enrolmentRecord, ifVersion int64) (int64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encoding an enrolment token: %w", err)
	}
	v, err := s.store.PutKey(ctx, enrolmentKeyPrefix+rec.ID, b, ifVersion)
	if err != nil {
		return 0, fmt.Errorf("storing an enrolment token: %w", err)
	}
	return v, nil
}

// readEnrolment reads enrolment token id; CodeNotFound when there is none.
func (s *Service) readEnrolment(ctx context.Context, id string) (enrolmentRecord, int64, error) {
	if !validTokenID.MatchString(id) {
		return enrolmentRecord{}, 0, newError(CodeNotFound, "no such enrolment token")
	}
	b, v, err := s.store.GetKey(ctx, enrolmentKeyPrefix+id)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return enrolmentRecord{}, 0, newError(CodeNotFound, "no such enrolment token")
	case err != nil:
		return enrolmentRecord{}, 0, fmt.Errorf("reading an enrolment token: %w", err)
	}
	var rec enrolmentRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.ID != id {
		return enrolmentRecord{}, 0, fmt.Errorf("enrolment token %q: the record does not decode", id)
	}
	return rec, v, nil
}

// GetEnrolmentToken returns enrolment token id of group (CodeNotFound for
// a token of another group).
func (s *Service) GetEnrolmentToken(ctx context.Context, group, id string) (EnrolmentToken, error) {
	rec, _, err := s.readEnrolment(ctx, id)
	if err != nil {
		return EnrolmentToken{}, err
	}
	if rec.Group != group {
		return EnrolmentToken{}, newError(CodeNotFound, "this group has no such enrolment token")
	}
	return rec.public(), nil
}

// RevokeEnrolmentToken revokes enrolment token id of group: it enrols
// nobody from now on. Devices it enrolled, and their tokens, are not
// touched. Revoking a revoked token succeeds and keeps the first time.
func (s *Service) RevokeEnrolmentToken(ctx context.Context, caller Principal, group, id string) error {
	for range casAttempts {
		rec, v, err := s.readEnrolment(ctx, id)
		if err != nil {
			return err
		}
		if rec.Group != group {
			return newError(CodeNotFound, "this group has no such enrolment token")
		}
		if rec.RevokedAt != nil {
			return nil
		}
		at := time.Now().UTC()
		rec.RevokedAt = &at
		if _, err := s.putEnrolment(ctx, rec, v); errors.Is(err, secrets.ErrConflict) {
			continue // a use was counted meanwhile
		} else if err != nil {
			return err
		}
		audit(ctx, caller, "enrolment_token.revoked").Str("enrolmentTokenId", id).Str("group", group).
			Int64("uses", rec.Uses).Msg("audit")
		return nil
	}
	return fmt.Errorf("revoking enrolment token %q: %w", id, errBusy)
}

// errBusy is the answer when too many enrolments with one token raced.
var errBusy = fmt.Errorf("too many concurrent updates: %w", secrets.ErrUnavailable)

// authenticateEnrolment checks an enrolment token text: the record named
// by the ID inside it, its hash compared in constant time, not revoked,
// not expired. Cost: one store read.
func (a *Authenticator) authenticateEnrolment(ctx context.Context, token string) (Principal, error) {
	id, _, ok := strings.Cut(strings.TrimPrefix(token, PrefixEnrolment), ".")
	if !ok || !validTokenID.MatchString(id) || a.keys == nil {
		return Principal{}, errUnauthorized()
	}
	b, v, err := a.keys.GetKey(ctx, enrolmentKeyPrefix+id)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return Principal{}, errUnauthorized()
	case err != nil:
		return Principal{}, fmt.Errorf("looking up an enrolment token: %w", err)
	}
	var rec enrolmentRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.ID != id {
		return Principal{}, fmt.Errorf("enrolment token %q: the record does not decode", id)
	}
	want, err := hex.DecodeString(rec.Hash)
	sum := sha256.Sum256([]byte(token))
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return Principal{}, errUnauthorized()
	}
	if rec.RevokedAt != nil || !time.Now().Before(rec.ExpiresAt) {
		return Principal{}, errUnauthorized()
	}
	return Principal{TokenID: id, Role: RoleEnrolment, CreatedAt: rec.CreatedAt, enrol: &enrolState{rec: rec, version: v}}, nil
}

// Enrolled is the result of an enrolment: the device created and its own
// device token, whose text is shown once.
type Enrolled struct {
	Device secrets.Device
	Token  Minted
}

// Enrol creates device id in the group of the caller's enrolment token and
// mints its device token. The token must not be revoked or expired, must
// have uses left, and id must match its pattern. A use is counted (a
// compare-and-set of the token record) before the device is created, and
// given back if creating it fails, so that concurrent enrolments never
// exceed the limit. A device that exists is never enrolled (CodeConflict):
// an enrolment token does not hand out tokens for existing devices.
//
// Cost, with the group in the cache: the token read by Authenticate, one
// write counting the use (more under contention), one write of the device,
// one of its token; a group that registers its devices adds a device read
// (to not register an existing device) and the cloud's registration; a
// cold cache one read of the group.
func (s *Service) Enrol(ctx context.Context, caller Principal, id string) (Enrolled, error) {
	if caller.Role != RoleEnrolment || caller.enrol == nil {
		return Enrolled{}, newError(CodeForbidden, "only an enrolment token may enrol")
	}
	st := *caller.enrol
	cloud := ""
	fail := func(outcome string, err error) (Enrolled, error) {
		s.metrics.Enrolled(cloud, outcome)
		audit(ctx, caller, "device.enrol_refused").Str("enrolmentTokenId", st.rec.ID).Str("group", st.rec.Group).
			Str("deviceId", id).Str("outcome", outcome).Msg("audit")
		return Enrolled{}, err
	}
	if st.rec.IDPattern != "" {
		re, err := compilePattern(st.rec.IDPattern)
		if err != nil {
			return fail(metrics.OutcomeError, fmt.Errorf("enrolment token %q: its ID pattern does not compile", st.rec.ID))
		}
		if !re.MatchString(id) {
			return fail(metrics.OutcomeDenied, newError(CodeForbidden, "the device ID does not match this enrolment token's ID pattern"))
		}
	}
	g, err := s.cache.group(ctx, st.rec.Group)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return fail(metrics.OutcomeDenied, newError(CodeForbidden, "this enrolment token's group no longer exists"))
	case err != nil:
		return fail(metrics.OutcomeError, fmt.Errorf("reading the group: %w", err))
	}
	cloud = g.Cloud
	if g.Registration != nil {
		// Do not register an existing device with the cloud only to refuse it.
		if _, err := s.store.GetDevice(ctx, id); err == nil {
			return fail(metrics.OutcomeExists, newError(CodeConflict, "the device already exists"))
		} else if !errors.Is(err, secrets.ErrNotFound) {
			return fail(metrics.OutcomeError, fmt.Errorf("reading device: %w", err))
		}
	}
	// Count the use first.
	st, err = s.takeUse(ctx, st)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return fail(metrics.OutcomeDenied, err)
		}
		return fail(metrics.OutcomeError, err)
	}
	d, err := s.createEnrolled(ctx, g, id)
	if err != nil {
		s.giveUse(ctx, st.rec.ID)
		switch {
		case errors.Is(err, secrets.ErrConflict):
			return fail(metrics.OutcomeExists, newError(CodeConflict, "the device already exists"))
		case len(InvalidFields(err)) > 0:
			return fail(metrics.OutcomeRejected, err)
		}
		return fail(metrics.OutcomeError, err)
	}
	tok, err := s.mint(ctx, caller, secrets.RoleDevice, id)
	if err != nil {
		// Leave nothing half done: no device without its token.
		derr := s.store.DeleteDevice(context.WithoutCancel(ctx), id)
		s.cache.forgetDevice(id)
		if derr == nil {
			s.giveUse(ctx, st.rec.ID)
		} else {
			zerolog.Ctx(ctx).Error().Err(derr).Str("deviceId", id).Msg("enrolment: could not remove the device whose token failed")
		}
		return fail(metrics.OutcomeError, fmt.Errorf("minting the device token: %w", err))
	}
	s.metrics.Enrolled(cloud, metrics.OutcomeEnrolled)
	audit(ctx, caller, "device.enrolled").Str("enrolmentTokenId", st.rec.ID).Str("group", g.ID).Str("deviceId", id).
		Str("cloud", d.Cloud).Str("createdTokenId", tok.Record.ID).Int64("uses", st.rec.Uses).Int64("maxUses", st.rec.MaxUses).Msg("audit")
	d.Secret = ""
	return Enrolled{Device: d, Token: tok}, nil
}

// createEnrolled registers (when the group says so), checks and creates
// device id of group g; ErrConflict when it exists.
func (s *Service) createEnrolled(ctx context.Context, g secrets.Group, id string) (secrets.Device, error) {
	doc, err := s.register(ctx, g, id, Document{Group: g.ID, Labels: g.Labels})
	if err != nil {
		return secrets.Device{}, err
	}
	d, err := s.checkDocument(id, doc, &g)
	if err != nil {
		return secrets.Device{}, err
	}
	stored, err := s.store.PutDevice(ctx, d, 0)
	s.cache.forgetDevice(id)
	if err != nil {
		return secrets.Device{}, fmt.Errorf("storing device: %w", err)
	}
	return stored, nil
}

// takeUse counts one use of the enrolment token, starting from what
// Authenticate read: a compare-and-set on the record's version, read again
// after losing a race. It refuses a token revoked, expired or used up.
func (s *Service) takeUse(ctx context.Context, st enrolState) (enrolState, error) {
	for attempt := range casAttempts {
		if attempt > 0 {
			rec, v, err := s.readEnrolment(ctx, st.rec.ID)
			if err != nil {
				return st, err
			}
			st = enrolState{rec: rec, version: v}
			backoff(ctx, attempt)
		}
		switch {
		case st.rec.RevokedAt != nil, !time.Now().Before(st.rec.ExpiresAt):
			return st, errUnauthorized()
		case st.rec.Uses >= st.rec.MaxUses:
			return st, newError(CodeForbidden, "this enrolment token has been used up")
		}
		next := st.rec
		next.Uses++
		v, err := s.putEnrolment(ctx, next, st.version)
		if errors.Is(err, secrets.ErrConflict) {
			continue
		}
		if err != nil {
			return st, err
		}
		return enrolState{rec: next, version: v}, nil
	}
	return st, fmt.Errorf("counting an enrolment: %w", errBusy)
}

// giveUse gives back a use counted for an enrolment that failed. A failure
// to do so is logged: the token then counts one use too many, never one
// too few.
func (s *Service) giveUse(ctx context.Context, id string) {
	ctx = context.WithoutCancel(ctx)
	for attempt := range casAttempts {
		rec, v, err := s.readEnrolment(ctx, id)
		if err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("enrolmentTokenId", id).Msg("enrolment: could not give back a use")
			return
		}
		if rec.Uses == 0 {
			return
		}
		rec.Uses--
		if _, err = s.putEnrolment(ctx, rec, v); err == nil {
			return
		}
		if !errors.Is(err, secrets.ErrConflict) {
			zerolog.Ctx(ctx).Error().Err(err).Str("enrolmentTokenId", id).Msg("enrolment: could not give back a use")
			return
		}
		backoff(ctx, attempt)
	}
	zerolog.Ctx(ctx).Error().Str("enrolmentTokenId", id).Msg("enrolment: could not give back a use (contention)")
}

// backoff waits a random time, growing with attempt, so that racing
// enrolments do not retry in lock step.
func backoff(ctx context.Context, attempt int) {
	ceiling := int64(time.Millisecond) << min(attempt, 6)
	n, err := rand.Int(rand.Reader, big.NewInt(ceiling))
	if err != nil {
		return
	}
	t := time.NewTimer(time.Duration(n.Int64()))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
