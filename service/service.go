// Package service is credsign's domain layer: issuing credentials,
// registering and deleting devices, minting and revoking tokens, the rules
// between them, the audit events and the outcome metrics. The HTTP handlers
// (package api), the CLI and the tests call it; it calls the cloud core
// and the secret store, and nothing of the HTTP layer.
//
// Who may call an operation is declared once, in openapi.yaml, and
// enforced by the API before a request reaches the service; the service
// enforces the rules about data: a device token acts on its own device
// only, and not on a device created after the token was minted.
package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/clouds"
	"github.com/credsign/credsign/internal/dpop"
	"github.com/credsign/credsign/internal/metrics"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service/tpmattest"
)

// DefaultMaxDeviceTTL caps the lifetime a device token may ask for when
// Config.MaxDeviceTTL is zero. Some credentials cannot be revoked short of
// rotating the device key (a SAS token), so a stolen device token must not
// be able to mint one that outlives the theft by a year.
const DefaultMaxDeviceTTL = 24 * time.Hour

// Config configures a Service.
type Config struct {
	// Store keeps devices and tokens. Required.
	Store secrets.Store
	// AdminToken is the admin's bearer token. Required (16 characters or more).
	AdminToken string
	// AdminTokens are more admin tokens, valid as well as AdminToken (which
	// may then be empty); Service.SetAdminTokens replaces them all.
	AdminTokens []string
	// Metrics receives the issuance outcomes; nil creates a private set.
	Metrics *metrics.Metrics
	// Now is the service's one clock: credentials are signed with it, and
	// every time rule of the service reads it (token mint times, expiry
	// and rotation overlap, enrolment tokens, device keys, proofs of
	// possession and their nonces, the record cache's TTL, the times
	// handed to the store); nil means time.Now. The stores stamp device
	// and group records with their own clock: a device token minted for a
	// device is never dated before the device's stamp, so that a clock
	// behind the store's does not mint tokens their device refuses.
	Now func() time.Time
	// MaxDeviceTTL caps the lifetime a device token may ask for (admin and
	// provisioner callers may ask up to the cloud's maximum); zero means
	// DefaultMaxDeviceTTL.
	MaxDeviceTTL time.Duration
	// JWTAlg is the algorithm of the deployment's JWT signing key (the
	// token family, cloud.Cloud.Tokens), created in the store on first use:
	// cloud.AlgES256 (the default when empty), AlgRS256 or AlgEdDSA.
	JWTAlg string
	// Issuer is the iss claim of those tokens: the server's public URL.
	Issuer string
	// Cache sizes the record cache of the issuing path.
	Cache CacheConfig
	// Registrar registers new devices of groups that name a Registration
	// with their cloud; nil: such groups are refused.
	Registrar Registrar
	// Clouds are the clouds the service issues for, and their abilities;
	// nil means clouds.Registry(), every cloud credsign has.
	Clouds *cloud.Registry
	// MaxEnrolmentFailures is how many enrolments with one enrolment token
	// may fail after calling the cloud's registration before the token is
	// refused (each such failure is a signed call to the cloud that
	// created nothing); zero means DefaultMaxEnrolmentFailures.
	MaxEnrolmentFailures int64
	// Audit is the audit sink: one JSON object a Write, one Write an event
	// (see audit.go); nil writes the events to the logger in each call's
	// context, with the diagnostic log.
	Audit io.Writer
	// Log is the diagnostic log, where an audit event that Audit failed to
	// take is written instead.
	Log zerolog.Logger
	// RotationOverlap is how long a rotated device token keeps working
	// after its successor is minted; zero means DefaultRotationOverlap.
	RotationOverlap time.Duration
	// MinTokenLifetime is the shortest lifetime a token may be minted
	// with; zero means DefaultMinTokenLifetime (tests and demonstrations
	// set seconds).
	MinTokenLifetime time.Duration
	// PublicURL, when set, is the URL devices address the server by
	// (behind a proxy): the htu of their proofs of possession is checked
	// against it instead of the request's scheme and Host.
	PublicURL string
	// RequireDPoPNonce refuses proofs of possession without a server
	// nonce (reason use-nonce).
	RequireDPoPNonce bool
	// MaxDPoPJTIs bounds the replay cache of proofs; zero: the default.
	MaxDPoPJTIs int
	// TPMAttestation verifies TPM attestation at enrolment
	// (POST /v1/enrol/attest); nil: the server has no TPM EK CAs and
	// refuses it. The service uses it with its own clock (Now).
	TPMAttestation *tpmattest.Verifier
}

// Service is the domain layer. It is safe for concurrent use.
type Service struct {
	store        secrets.Store
	cache        *cache
	devTokens    *deviceTokens
	authn        *Authenticator
	metrics      *metrics.Metrics
	now          func() time.Time
	maxDeviceTTL time.Duration
	jwt          *jwtKeys
	issuer       string
	registrar    Registrar
	clouds       *cloud.Registry
	// maxEnrolFailures is Config.MaxEnrolmentFailures with its default.
	maxEnrolFailures int64
	patterns         patterns
	inflight         inflight
	// audit is the logger of Config.Audit; nil without one.
	audit *zerolog.Logger
	// adminTokens are the admin tokens the service was built with.
	adminTokens []string
	// rotationOverlap and minTokenLifetime are the Config's, with defaults.
	rotationOverlap  time.Duration
	minTokenLifetime time.Duration
	proofs           proofs
	tpm              *tpmattest.Verifier
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("service: a store is required")
	}
	m := cfg.Metrics
	if m == nil {
		m = metrics.New()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now // the one default of the service's clock
	}
	c, err := newCache(cfg.Store, m, cfg.Cache, now)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	authn := &Authenticator{tokens: c, now: now}
	if err := authn.SetAdminTokens(adminTokens(cfg)); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	dt := &deviceTokens{store: cfg.Store, ttl: c.ttl, now: now}
	authn.v2 = dt
	authn.enrolments = c
	s := &Service{store: cfg.Store, cache: c, authn: authn, devTokens: dt, metrics: m, now: now, maxDeviceTTL: cfg.MaxDeviceTTL,
		issuer: cfg.Issuer, registrar: cfg.Registrar, clouds: cfg.Clouds, tpm: cfg.TPMAttestation}
	if s.tpm != nil {
		s.tpm = s.tpm.WithClock(now)
	}
	if s.clouds == nil {
		s.clouds = clouds.Registry()
	}
	s.adminTokens = adminTokens(cfg)
	if cfg.Audit != nil {
		l := zerolog.New(&auditWriter{sink: cfg.Audit, metrics: m, diag: cfg.Log}).With().Timestamp().Logger()
		s.audit = &l
	}
	m.Clouds(s.clouds.Names()...)
	alg := cfg.JWTAlg
	if alg == "" {
		alg = cloud.AlgES256
	}
	if alg != cloud.AlgES256 && alg != cloud.AlgRS256 && alg != cloud.AlgEdDSA {
		return nil, fmt.Errorf("service: JWT algorithm %q is not ES256, RS256 or EdDSA", alg)
	}
	s.proofs = proofs{publicURL: cfg.PublicURL, requireNonce: cfg.RequireDPoPNonce, maxJTIs: cfg.MaxDPoPJTIs}
	if cfg.PublicURL != "" {
		if _, err := dpop.NewVerifier(dpop.Config{NonceKey: make([]byte, 32), PublicURL: cfg.PublicURL}); err != nil {
			return nil, fmt.Errorf("service: %w", err)
		}
	}
	s.jwt = &jwtKeys{store: cfg.Store, alg: alg, ttl: c.ttl, now: now}
	s.maxEnrolFailures = cfg.MaxEnrolmentFailures
	if s.maxEnrolFailures <= 0 {
		s.maxEnrolFailures = DefaultMaxEnrolmentFailures
	}
	if s.maxDeviceTTL <= 0 {
		s.maxDeviceTTL = DefaultMaxDeviceTTL
	}
	s.rotationOverlap = cmp.Or(max(cfg.RotationOverlap, 0), DefaultRotationOverlap)
	s.minTokenLifetime = cmp.Or(max(cfg.MinTokenLifetime, 0), DefaultMinTokenLifetime)
	authn.rotationOverlap = s.rotationOverlap
	if s.maxDeviceTTL < time.Second {
		return nil, errors.New("service: the device TTL cap must be at least 1s")
	}
	return s, nil
}

// Metrics are the service's metrics, on whose registry the API exports its own.
func (s *Service) Metrics() *metrics.Metrics { return s.metrics }

// Now is the service's clock (Config.Now).
func (s *Service) Now() time.Time { return s.now() }

// AdminTokens are the admin tokens the service was built with, for the
// API's access log to hide should one be pasted into a URL.
func (s *Service) AdminTokens() []string { return s.adminTokens }

// Authenticate resolves an Authorization header value to its caller.
func (s *Service) Authenticate(ctx context.Context, header string) (Principal, error) {
	return s.authn.Authenticate(ctx, header)
}

// Health is what Ping learned.
type Health struct {
	// Degraded is true while the store does not answer but devices the
	// cache knows still get credentials, until StaleUntil at most.
	Degraded   bool
	StaleUntil time.Time
}

// Ping reports whether the store answers. When it does not, but the cache
// still serves known devices, it says so (Health.Degraded) and returns nil:
// the replica still does useful work and should stay in rotation.
func (s *Service) Ping(ctx context.Context) (Health, error) {
	err := s.store.Ping(ctx)
	if err == nil {
		s.cache.up()
		return Health{}, nil
	}
	if errors.Is(err, secrets.ErrUnavailable) {
		s.cache.down()
		if ok, until := s.cache.degraded(); ok {
			return Health{Degraded: true, StaleUntil: until}, nil
		}
	}
	return Health{}, fmt.Errorf("pinging the store: %w", err)
}

// CloudInfo is a supported cloud with the lifetimes this service allows.
type CloudInfo struct {
	cloud.Cloud
	// MaxDeviceTTL is the longest lifetime a device token may ask for
	// (with the default params): the cloud's maximum or the server's cap,
	// whichever is shorter.
	MaxDeviceTTL time.Duration
}

// Clouds lists the clouds this service issues for, sorted by name.
func (s *Service) Clouds() []CloudInfo {
	return DescribeClouds(s.clouds, s.maxDeviceTTL)
}

// DescribeClouds lists the clouds of reg with the lifetimes a server
// whose device cap is maxDeviceTTL allows.
func DescribeClouds(reg *cloud.Registry, maxDeviceTTL time.Duration) []CloudInfo {
	clouds := reg.Clouds()
	out := make([]CloudInfo, 0, len(clouds))
	for _, c := range clouds {
		out = append(out, CloudInfo{Cloud: c, MaxDeviceTTL: min(c.MaxTTL, maxDeviceTTL)})
	}
	return out
}

// adminTokens is cfg.AdminToken (if set) and cfg.AdminTokens.
func adminTokens(cfg Config) []string {
	var ts []string
	if cfg.AdminToken != "" || len(cfg.AdminTokens) == 0 {
		ts = append(ts, cfg.AdminToken)
	}
	return append(ts, cfg.AdminTokens...)
}

// SetAdminTokens makes tokens the admin tokens, all valid at once, in place
// of the ones before, without a restart (credsign serve calls it when its
// --admin-token-file changes). If any is unfit or there is none it changes
// nothing and says why, never with a token's text. A change writes the audit
// event admin.tokens.reloaded with the count of tokens (never their text)
// to the logger in ctx.
func (s *Service) SetAdminTokens(ctx context.Context, tokens []string) error {
	if err := s.authn.SetAdminTokens(tokens); err != nil {
		return fmt.Errorf("setting the admin tokens: %w", err)
	}
	audit(s.WithAudit(ctx, ""), Principal{}, "admin.tokens.reloaded").Int("count", len(tokens)).Msg("audit")
	return nil
}
