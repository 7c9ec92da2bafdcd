package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/internal/dpop"
	"github.com/credsign/credsign/internal/metrics"
	"github.com/credsign/credsign/internal/retry"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service/tpmattest"
)

// RoleEnrolment is the role of an enrolment token: it may enrol devices in
// its group (POST /v1/enrol) and do nothing else.
const RoleEnrolment = "enrolment"

// PrefixEnrolment starts the text of every enrolment token:
//
//	cse_<token ID>.<64 hex digits>
//
// The ID inside the text finds the record in one read
// (secrets.EnrolmentTokenStore); the record keeps the SHA-256 of the text,
// which is compared in constant time.
const PrefixEnrolment = "cse_"

// Enrolment token limits.
const (
	MaxEnrolmentUses   = 1_000_000
	MaxEnrolmentTTL    = 365 * 24 * time.Hour
	maxIDPatternLength = 256
	// DefaultMaxEnrolmentFailures is how many failed registrations with
	// the cloud an enrolment token may cause before it is refused
	// (Config.MaxEnrolmentFailures).
	DefaultMaxEnrolmentFailures = 10
	// casAttempts bounds the compare-and-set rounds of one use counted or
	// released, when many devices enrol with the same token at once.
	casAttempts = 64
)

var validTokenID = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

// enrolmentRecord is what the store keeps of an enrolment token; its
// Version makes counting uses a compare-and-set.
type enrolmentRecord = secrets.EnrolmentToken

// EnrolmentToken is what the API shows of an enrolment token (never its
// text, which only the minting response carries).
type EnrolmentToken struct {
	ID    string
	Group string
	// Name is what the minter called it ("" when none was given).
	Name      string
	MaxUses   int64
	Uses      int64
	ExpiresAt time.Time
	IDPattern string
	CreatedAt time.Time
	RevokedAt *time.Time
	// Failures counts failed registrations with the cloud; at the server's
	// limit (Config.MaxEnrolmentFailures) the token enrols nobody.
	Failures int64
}

func publicEnrolment(r enrolmentRecord) EnrolmentToken {
	return EnrolmentToken{ID: r.ID, Group: r.Group, Name: r.Name, MaxUses: r.MaxUses, Uses: r.Uses, ExpiresAt: r.ExpiresAt,
		IDPattern: r.IDPattern, CreatedAt: r.CreatedAt, RevokedAt: r.RevokedAt, Failures: r.Failures}
}

// sameGroup reports whether g is the group enrolment token rec was minted
// for, not only a group of the same ID: a group deleted and created again
// has a new CreatedAt (the store sets it at creation and keeps it on every
// replace). A record from before GroupCreatedAt was kept belongs to g when
// it was minted after g was created (it cannot be for an earlier group of
// that ID, which was gone by then).
func sameGroup(rec enrolmentRecord, g secrets.Group) bool {
	if rec.Group != g.ID {
		return false
	}
	if rec.GroupCreatedAt.IsZero() {
		return !rec.CreatedAt.Before(g.CreatedAt)
	}
	return rec.GroupCreatedAt.Equal(g.CreatedAt)
}

// EnrolmentTokenRequest is what a provisioner asks for.
type EnrolmentTokenRequest struct {
	// Name, optional, is what the minter calls the token (MaxTokenName bytes at most).
	Name string
	// MaxUses is how many devices the token may enrol (1 to MaxEnrolmentUses).
	MaxUses int64
	// TTL or ExpiresAt (exactly one) says when the token stops enrolling.
	TTL       time.Duration
	ExpiresAt *time.Time
	// IDPattern, when set, is one RE2 expression every enrolled device ID
	// must match as a whole (see compilePattern).
	IDPattern string
}

// enrolState is what Authenticate read of an enrolment token, handed to
// Enrol so that enrolling costs no second read of it.
type enrolState struct {
	rec     enrolmentRecord
	version int64
}

// compilePattern compiles an ID pattern so that it matches whole IDs only,
// whatever it contains. The pattern is parsed on its own, as one
// expression (text that only makes sense spliced into something else, such
// as "a)|(.*", does not parse), and the parsed expression is placed between
// \A and \z in the syntax tree, never by joining strings; flags it sets
// ((?m), (?s)) stay inside it. The result is the expression compiled.
func compilePattern(p string) (*regexp.Regexp, error) {
	if len(p) > maxIDPatternLength {
		return nil, errors.New("the ID pattern is longer than 256 bytes")
	}
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("the ID pattern is not a valid RE2 expression: %w", err)
	}
	anchored := &syntax.Regexp{Op: syntax.OpConcat, Flags: syntax.Perl, Sub: []*syntax.Regexp{
		{Op: syntax.OpBeginText, Flags: syntax.Perl},
		re,
		{Op: syntax.OpEndText, Flags: syntax.Perl},
	}}
	return regexp.Compile(anchored.String())
}

// patterns compiles each enrolment token's ID pattern once per replica:
// every token minted with the same pattern shares it.
type patterns struct {
	mu sync.Mutex
	m  map[string]*regexp.Regexp
}

// maxPatterns bounds the compiled patterns one replica keeps; past it the
// set starts again (patterns are few: one per batch of devices).
const maxPatterns = 4096

// get returns pattern p compiled (compilePattern).
func (ps *patterns) get(p string) (*regexp.Regexp, error) {
	ps.mu.Lock()
	re, ok := ps.m[p]
	ps.mu.Unlock()
	if ok {
		return re, nil
	}
	re, err := compilePattern(p)
	if err != nil {
		return nil, err
	}
	ps.mu.Lock()
	if ps.m == nil || len(ps.m) >= maxPatterns {
		ps.m = map[string]*regexp.Regexp{}
	}
	ps.m[p] = re
	ps.mu.Unlock()
	return re, nil
}

// inflight lets one enrolment per enrolment token at a time call the
// cloud's registration on this replica: the others wait for it (or for
// their request to end). With R replicas a token has at most R
// registrations under way.
type inflight struct {
	mu   sync.Mutex
	lock map[string]*tokenLock
}

type tokenLock struct {
	sem     chan struct{}
	waiters int
}

// acquire waits until no other enrolment with token id is registering on
// this replica, or until ctx ends; release must be called after success.
func (f *inflight) acquire(ctx context.Context, id string) (release func(), err error) {
	f.mu.Lock()
	if f.lock == nil {
		f.lock = map[string]*tokenLock{}
	}
	l := f.lock[id]
	if l == nil {
		l = &tokenLock{sem: make(chan struct{}, 1)}
		f.lock[id] = l
	}
	l.waiters++
	f.mu.Unlock()
	done := func() {
		f.mu.Lock()
		if l.waiters--; l.waiters == 0 {
			delete(f.lock, id)
		}
		f.mu.Unlock()
	}
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem; done() }, nil
	case <-ctx.Done():
		done()
		return nil, fmt.Errorf("waiting for the registration under way with this enrolment token: %w", ctx.Err())
	}
}

// CreateEnrolmentToken mints an enrolment token for group, which must
// exist. The text is returned once; the store keeps its hash.
//
// Cost: one store read (the group), one write.
//
// The token belongs to this group, not to its ID: if the group is deleted
// and a group of the same ID created, the token enrols nobody in it.
func (s *Service) CreateEnrolmentToken(ctx context.Context, caller Principal, group string, req EnrolmentTokenRequest) (EnrolmentToken, string, error) {
	now := s.now().UTC()
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
	if err := checkTokenName(req.Name); err != nil {
		fields = append(fields, *err)
	}
	if req.IDPattern != "" {
		if len(req.IDPattern) > maxIDPatternLength {
			fields = append(fields, FieldError{Field: "idPattern", Reason: "longer than 256 bytes"})
		} else if _, err := s.patterns.get(req.IDPattern); err != nil {
			fields = append(fields, FieldError{Field: "idPattern", Reason: "not one valid RE2 regular expression"})
		}
	}
	if len(fields) > 0 {
		return EnrolmentToken{}, "", invalid(fields...)
	}
	g, err := s.store.GetGroup(ctx, group)
	if err != nil {
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
	rec := enrolmentRecord{ID: id, Hash: Hash(text), Group: group, Name: req.Name, MaxUses: req.MaxUses, ExpiresAt: expires,
		IDPattern: req.IDPattern, CreatedAt: now, GroupCreatedAt: g.CreatedAt}
	_, err = s.putEnrolment(ctx, rec, 0)
	s.cache.forgetEnrolment(id)
	if err != nil {
		return EnrolmentToken{}, "", err
	}
	audit(ctx, caller, "enrolment_token.created").Str("enrolmentTokenId", id).Str("group", group).
		Int64("maxUses", rec.MaxUses).Time("expiresAt", expires).Msg("audit")
	return publicEnrolment(rec), text, nil
}

func (s *Service) putEnrolment(ctx context.Context, rec enrolmentRecord, ifVersion int64) (int64, error) {
	v, err := s.store.PutEnrolmentToken(ctx, rec, ifVersion)
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
	rec, err := s.store.GetEnrolmentToken(ctx, id)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return enrolmentRecord{}, 0, newError(CodeNotFound, "no such enrolment token")
	case err != nil:
		return enrolmentRecord{}, 0, fmt.Errorf("reading an enrolment token: %w", err)
	}
	return rec, rec.Version, nil
}

// GetEnrolmentToken returns enrolment token id of group (CodeNotFound for
// a token of another group, or of an earlier group of the same ID).
//
// Cost: two store reads (the token, the group).
func (s *Service) GetEnrolmentToken(ctx context.Context, group, id string) (EnrolmentToken, error) {
	rec, _, err := s.readEnrolment(ctx, id)
	if err != nil {
		return EnrolmentToken{}, err
	}
	if err := s.tokenOfGroup(ctx, rec, group); err != nil {
		return EnrolmentToken{}, err
	}
	return publicEnrolment(rec), nil
}

// tokenOfGroup returns nil when enrolment token rec was minted for group
// as it exists now, else CodeNotFound.
func (s *Service) tokenOfGroup(ctx context.Context, rec enrolmentRecord, group string) error {
	notOurs := newError(CodeNotFound, "this group has no such enrolment token")
	if rec.Group != group {
		return notOurs
	}
	g, err := s.store.GetGroup(ctx, group)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return notOurs
	case err != nil:
		return fmt.Errorf("reading group: %w", err)
	case !sameGroup(rec, g):
		return notOurs
	}
	return nil
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
		if err := s.tokenOfGroup(ctx, rec, group); err != nil {
			return err
		}
		if rec.RevokedAt != nil {
			return nil
		}
		at := s.now().UTC()
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
// not expired. Cost: one store read; none for an ID the cache knows to be
// unknown, or whose record's hash it knows to differ (see cache.enrolment).
func (a *Authenticator) authenticateEnrolment(ctx context.Context, token string) (Principal, error) {
	id, _, ok := strings.Cut(strings.TrimPrefix(token, PrefixEnrolment), ".")
	if !ok || !validTokenID.MatchString(id) || a.enrolments == nil {
		return Principal{}, errUnauthorized()
	}
	sum := sha256.Sum256([]byte(token))
	rec, err := a.enrolments.enrolment(ctx, id, hex.EncodeToString(sum[:]))
	switch {
	case errors.Is(err, secrets.ErrNotFound), errors.Is(err, errWrongText):
		return Principal{}, errUnauthorized()
	case err != nil:
		return Principal{}, fmt.Errorf("looking up an enrolment token: %w", err)
	}
	v := rec.Version
	want, err := hex.DecodeString(rec.Hash)
	if err != nil || len(want) != sha256.Size {
		return Principal{}, fmt.Errorf("enrolment token %q: the record does not decode", id)
	}
	a.enrolments.rememberHash(id, rec.Hash)
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return Principal{}, errUnauthorized()
	}
	if rec.RevokedAt != nil || !a.now().Before(rec.ExpiresAt) {
		return Principal{}, errUnauthorized()
	}
	return Principal{TokenID: id, Role: RoleEnrolment, CreatedAt: rec.CreatedAt, enrol: &enrolState{rec: rec, version: v}}, nil
}

// Enrolled is the result of an enrolment: the device created and its own
// device token, whose text is shown once.
type Enrolled struct {
	Device secrets.Device
	// Token is the device's bearer token; none (zero) when the enrolment
	// bound a key (KeyID) instead.
	Token Minted
	KeyID string
}

// Enrol creates device id in the group of the caller's enrolment token and
// mints its device token. The token must not be revoked or expired, must
// have uses left and registration failures to spare, its group must be
// the one it was minted for, and id must match its pattern. A use is
// counted (a compare-and-set of the token record) before the device is
// created, and given back if creating it fails, so that concurrent
// enrolments never exceed the limit. In a group that registers its
// devices with the cloud, one enrolment per token at a time does so (on
// this replica), and a failure after the cloud was called counts against
// the token's budget of failures (Config.MaxEnrolmentFailures). A device
// that exists is never enrolled (CodeConflict): an enrolment token does
// not hand out tokens for existing devices. With a DPoP proof (the
// caller's proof key) the key is bound instead of a token minted; att, the
// answer to a TPM attestation challenge (EnrolAttest), marks that key as
// living in the TPM when it verifies, and a group that requires TPM
// attestation enrols nothing else.
//
// Cost, with the group in the cache: the token read by Authenticate, one
// write counting the use (more under contention), one write of the device,
// one of its token; a group that registers its devices adds a device read
// (to not register an existing device) and the cloud's registration; a
// cold cache one read of the group.
func (s *Service) Enrol(ctx context.Context, caller Principal, id string, att *tpmattest.Attestation) (Enrolled, error) {
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
		re, err := s.patterns.get(st.rec.IDPattern)
		if err != nil {
			// A token minted before patterns were parsed on their own.
			return fail(metrics.OutcomeDenied, newError(CodeForbidden, "this enrolment token's ID pattern is not one well-formed expression; mint a new token"))
		}
		if !re.MatchString(id) {
			return fail(metrics.OutcomeDenied, newError(CodeForbidden, "the device ID does not match this enrolment token's ID pattern"))
		}
	}
	g, err := s.cache.group(ctx, st.rec.Group)
	switch {
	case errors.Is(err, secrets.ErrNotFound), err == nil && !sameGroup(st.rec, g):
		return fail(metrics.OutcomeDenied, newError(CodeForbidden, "this enrolment token's group no longer exists"))
	case err != nil:
		return fail(metrics.OutcomeError, fmt.Errorf("reading the group: %w", err))
	}
	cloud = g.Cloud
	if att != nil && caller.proofKey == nil {
		return fail(metrics.OutcomeDenied, invalid(FieldError{Field: "attestation", Reason: "attests a device key: send it with the DPoP proof of that key"}))
	}
	var key *secrets.DeviceKey
	if caller.proofKey != nil {
		attestation := AttestationNone
		if att != nil {
			if err := s.VerifyEnrolAttestation(ctx, caller, id, *att, caller.proofKey.Key); err != nil {
				return fail(metrics.OutcomeDenied, err)
			}
			attestation = AttestationTPM
		}
		k, err := s.enrolmentKey(caller, attestation)
		if err != nil {
			return fail(metrics.OutcomeError, err)
		}
		key = &k
	} else if g.RequireKey {
		return fail(metrics.OutcomeDenied, refusal(dpop.KeyRequired, "this group's devices enrol with a key: send a DPoP proof signed by the device's key"))
	}
	if g.RequireAttestation == AttestationTPM && (key == nil || key.Attestation != AttestationTPM) {
		return fail(metrics.OutcomeDenied, newError(CodeForbidden, "this group requires TPM attestation of the device key (POST /v1/enrol/attest, then attestation in POST /v1/enrol with a DPoP proof)"))
	}
	registers := g.Registration != nil
	if registers {
		// One registration with the cloud per token at a time: a token
		// read from a device cannot fan out signed calls to the cloud.
		release, err := s.inflight.acquire(ctx, st.rec.ID)
		if err != nil {
			return fail(metrics.OutcomeError, err)
		}
		defer release()
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
	d, err := s.createEnrolled(ctx, g, id, key)
	if err != nil {
		s.giveUse(ctx, st.rec.ID, registers)
		switch {
		case errors.Is(err, secrets.ErrConflict):
			return fail(metrics.OutcomeExists, newError(CodeConflict, "the device already exists"))
		case len(InvalidFields(err)) > 0:
			return fail(metrics.OutcomeRejected, err)
		}
		return fail(metrics.OutcomeError, err)
	}
	if key != nil {
		// The key is the device's credential: no bearer token is issued.
		s.metrics.Enrolled(cloud, metrics.OutcomeEnrolled)
		audit(ctx, caller, "device.enrolled").Str("enrolmentTokenId", st.rec.ID).Str("group", g.ID).Str("deviceId", id).
			Str("cloud", d.Cloud).Str("keyId", key.ID).Int64("uses", st.rec.Uses).Int64("maxUses", st.rec.MaxUses).Msg("audit")
		d.Secret = ""
		return Enrolled{Device: d, KeyID: key.ID}, nil
	}
	tok, err := s.mint(ctx, caller, d)
	if err != nil {
		// Leave nothing half done: no device without its token.
		derr := s.store.DeleteDevice(context.WithoutCancel(ctx), id)
		s.cache.forgetDevice(id)
		if derr == nil {
			s.giveUse(ctx, st.rec.ID, registers)
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
// device id of group g, with key when not nil; ErrConflict when it exists.
func (s *Service) createEnrolled(ctx context.Context, g secrets.Group, id string, key *secrets.DeviceKey) (secrets.Device, error) {
	doc, err := s.register(ctx, g, id, Document{Group: g.ID, Labels: g.Labels})
	if err != nil {
		return secrets.Device{}, err
	}
	d, err := s.checkDocument(id, doc, &g)
	if err != nil {
		return secrets.Device{}, err
	}
	if key != nil {
		d.Keys = []secrets.DeviceKey{*key}
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
		case st.rec.RevokedAt != nil, !s.now().Before(st.rec.ExpiresAt):
			return st, errUnauthorized()
		case st.rec.Failures >= s.maxEnrolFailures:
			return st, newError(CodeForbidden, "this enrolment token has had too many failed registrations with the cloud; mint a new one")
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

// giveUse gives back a use counted for an enrolment that failed, and when
// failed (the cloud's registration was called) counts a failure, in one
// compare-and-set. A failure to do so is logged: the token then counts one
// use too many, never one too few (and misses one failure).
func (s *Service) giveUse(ctx context.Context, id string, failed bool) {
	ctx = context.WithoutCancel(ctx)
	for attempt := range casAttempts {
		rec, v, err := s.readEnrolment(ctx, id)
		if err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("enrolmentTokenId", id).Msg("enrolment: could not give back a use")
			return
		}
		if rec.Uses == 0 && !failed {
			return
		}
		rec.Uses = max(rec.Uses-1, 0)
		if failed {
			rec.Failures++
		}
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

// casBackoff paces compare-and-set retries: up to 1ms, doubling to 64ms.
var casBackoff = retry.Backoff{Initial: time.Millisecond, Max: 64 * time.Millisecond}

// backoff waits a random time, growing with attempt, so that racing
// enrolments do not retry in lock step.
func backoff(ctx context.Context, attempt int) {
	_ = retry.Sleep(ctx, casBackoff.Delay(attempt))
}
