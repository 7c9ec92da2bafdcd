// Package api is credsign's HTTP layer: the handlers of the strict server
// generated from openapi.yaml (package api/oapi), authentication and rate
// limiting per token, request validation against the embedded contract,
// RFC 9457 problem responses, the access log, audit events and metrics.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/credsign/credsign/cloud"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/credsign/credsign"
	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/api/problem"
	"github.com/credsign/credsign/api/ratelimit"
	"github.com/credsign/credsign/internal/metrics"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
	"github.com/credsign/credsign/service/tpmattest"
)

// DefaultMaxBodyBytes caps request bodies when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 64 << 10

// Default per-token rate limits. A device token may ask 60 times a minute
// with bursts of 20, so a device asking a few times an hour never notices
// it. Admin and provisioner tokens drive whole fleets (registering devices,
// minting their tokens, checking them) and get a hundred times that rate.
// An enrolment token is shared by a batch of devices that may boot at once,
// but it is also a secret read from any one device's flash, and each of its
// calls may be a signed registration call to the cloud: it gets a tenth of
// the staff rate.
const (
	DefaultRatePerMinute            = 60
	DefaultRateBurst                = 20
	DefaultProvisionerRatePerMinute = 6000
	DefaultProvisionerRateBurst     = 1000
	DefaultEnrolmentRatePerMinute   = 600
	DefaultEnrolmentRateBurst       = 60
)

// Config configures a Server.
type Config struct {
	// Store keeps devices and tokens. Required.
	Store secrets.Store
	// AdminToken is the admin's bearer token. Required (16 characters or more).
	AdminToken string
	// AdminTokens are more admin tokens, valid as well as AdminToken (which
	// may then be empty); Server.SetAdminTokens replaces them all.
	AdminTokens []string
	// Logger receives the access log, audit events and errors (JSON).
	Logger zerolog.Logger
	// RatePerMinute is the request rate of each device token; zero or
	// less turns rate limiting off for every token.
	RatePerMinute float64
	// RateBurst is how many requests a device token may make at once.
	RateBurst int
	// ProvisionerRatePerMinute is the request rate of each admin or
	// provisioner token; zero or less leaves those tokens unlimited.
	ProvisionerRatePerMinute float64
	// ProvisionerRateBurst is how many requests an admin or provisioner
	// token may make at once.
	ProvisionerRateBurst int
	// EnrolmentRatePerMinute is the request rate of each enrolment token;
	// zero means DefaultEnrolmentRatePerMinute, less than zero leaves them
	// unlimited (as does RatePerMinute zero or less).
	EnrolmentRatePerMinute float64
	// EnrolmentRateBurst is how many requests an enrolment token may make
	// at once; zero means DefaultEnrolmentRateBurst.
	EnrolmentRateBurst int
	// MaxEnrolmentFailures is service.Config.MaxEnrolmentFailures.
	MaxEnrolmentFailures int64
	// TPMAttestation is service.Config.TPMAttestation.
	TPMAttestation *tpmattest.Verifier
	// MaxBodyBytes caps request bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now is the clock credentials are signed with (and the rate limiter
	// runs on); nil means time.Now. Token and store records always use the
	// wall clock.
	Now func() time.Time
	// MaxDeviceTTL caps the credential lifetime a device token may ask
	// for; zero means service.DefaultMaxDeviceTTL.
	MaxDeviceTTL time.Duration
	// Cache sizes the service's record cache.
	Cache service.CacheConfig
	// JWTAlg and Issuer configure the token family's JWTs (see service.Config).
	JWTAlg, Issuer string
	// Expiries are times /metrics exports for the alerting rules.
	Expiries []Expiry
	// Registrar registers new devices of groups with a registration
	// (service.Config.Registrar); nil: such groups are refused.
	Registrar service.Registrar
	// Clouds are the clouds served (service.Config.Clouds); nil means
	// every cloud credsign has.
	Clouds *cloud.Registry
	// ImportIdleTimeout ends an import (POST /v1/imports) that sends no
	// device line, or takes none of its results, for this long; zero means
	// DefaultImportIdleTimeout.
	ImportIdleTimeout time.Duration
	// Imports bounds the imports under way at once in all, and
	// ImportsPerToken those of one token; more are answered 429. Zero
	// means DefaultImports and DefaultImportsPerToken.
	Imports, ImportsPerToken int
	// ImportMaxLines is how many lines one import may have; zero means
	// DefaultImportMaxLines.
	ImportMaxLines int64
	// ReadyCacheFor is how long /readyz answers from its last store ping;
	// zero means DefaultReadyCacheFor, negative pings on every call.
	ReadyCacheFor time.Duration
}

// Expiry is a time exported as a gauge of Unix seconds.
type Expiry struct {
	Name, Help string
	At         func() time.Time
}

// Server serves the API. It implements http.Handler.
type Server struct {
	svc *service.Service
	// ops are the operations of the contract by method and route pattern.
	ops map[string]*operation
	// redact hides token texts in logged paths.
	redact *redactor
	// deviceLimiter limits device tokens, staffLimiter admin and
	// provisioner tokens, enrolLimiter enrolment tokens (nil: unlimited).
	deviceLimiter *ratelimit.Limiter
	staffLimiter  *ratelimit.Limiter
	enrolLimiter  *ratelimit.Limiter
	log           zerolog.Logger
	metrics       *metrics.Metrics
	maxBody       int64
	now           func() time.Time
	handler       http.Handler
	specYAML      []byte
	imports       *importLimits
	ready         *readiness
}

// operation is one operation of the contract, as the gate needs it.
type operation struct {
	route *routers.Route
	// roles may call it; nil for a public operation.
	roles []string
	// stream: the body is NDJSON, read line by line by the handler
	// (see streamBody), not read whole and validated by the gate.
	stream bool
}

// New builds a Server from cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: a store is required")
	}
	m := metrics.New()
	for _, e := range cfg.Expiries {
		m.Expiry(e.Name, e.Help, e.At)
	}
	svc, err := service.New(service.Config{
		Store:        m.InstrumentStore(cfg.Store),
		AdminToken:   cfg.AdminToken,
		AdminTokens:  cfg.AdminTokens,
		Metrics:      m,
		Now:          cfg.Now,
		MaxDeviceTTL: cfg.MaxDeviceTTL,
		Cache:        cfg.Cache,
		Registrar:    cfg.Registrar,
		Clouds:       cfg.Clouds,
		JWTAlg:       cfg.JWTAlg,
		Issuer:       cfg.Issuer,

		MaxEnrolmentFailures: cfg.MaxEnrolmentFailures,
		TPMAttestation:       cfg.TPMAttestation,
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	ops, err := specOperations()
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{
		svc:      svc,
		ops:      ops,
		redact:   newRedactor(append([]string{cfg.AdminToken}, cfg.AdminTokens...), service.TokenKinds),
		log:      cfg.Logger,
		metrics:  m,
		maxBody:  cfg.MaxBodyBytes,
		now:      cfg.Now,
		specYAML: credsign.OpenAPI,
	}
	if cfg.RatePerMinute > 0 {
		s.deviceLimiter = ratelimit.New(cfg.RatePerMinute, cfg.RateBurst)
		s.staffLimiter = ratelimit.New(cfg.ProvisionerRatePerMinute, cfg.ProvisionerRateBurst)
		rate, burst := cfg.EnrolmentRatePerMinute, cfg.EnrolmentRateBurst
		if rate == 0 {
			rate = DefaultEnrolmentRatePerMinute
		}
		if burst == 0 {
			burst = DefaultEnrolmentRateBurst
		}
		s.enrolLimiter = ratelimit.New(rate, burst)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.imports = newImportLimits(cfg)
	s.ready = &readiness{ping: svc.Ping, now: s.now, cacheFor: cfg.ReadyCacheFor}
	if s.ready.cacheFor == 0 {
		s.ready.cacheFor = DefaultReadyCacheFor
	}
	s.handler = s.routes()
	return s, nil
}

// specOperations loads the embedded contract and indexes its operations by
// method and path template, which are also chi's route patterns. It
// refuses a contract whose secured operations do not all say which roles
// may call them: x-credsign-roles is the one declaration of who may call
// what.
func specOperations() (map[string]*operation, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(credsign.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("loading openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validating openapi.yaml: %w", err)
	}
	ops := map[string]*operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			o := &operation{route: &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}}
			o.stream = op.RequestBody != nil && op.RequestBody.Value.Content.Get(ndjson) != nil
			if op.Security == nil || len(*op.Security) > 0 {
				if o.roles, err = operationRoles(op); err != nil {
					return nil, fmt.Errorf("openapi.yaml %s %s: %w", method, path, err)
				}
			}
			ops[method+" "+path] = o
		}
	}
	return ops, nil
}

// ServeHTTP implements http.Handler.
// SetAdminTokens makes tokens the admin tokens, all valid at once, in place
// of the ones before, without a restart; the access log keeps redacting the
// old ones as well. If any is unfit or there is none it changes nothing. It
// writes the audit event admin.tokens.reloaded (with the count, never a
// token's text) to the Server's logger.
func (s *Server) SetAdminTokens(ctx context.Context, tokens []string) error {
	for _, t := range tokens {
		if err := service.CheckAdminToken(t); err != nil {
			return fmt.Errorf("api: %w", err)
		}
	}
	s.redact.addAdmins(tokens) // before they are valid: a pasted one is never logged
	if err := s.svc.SetAdminTokens(s.log.WithContext(ctx), tokens); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	// GetHead serves HEAD as the GET it mirrors (RFC 9110 section 9.3.2);
	// net/http sends only the headers, and the log keeps the method HEAD.
	r.Use(s.observe, s.recoverPanics, middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, problem.New(http.StatusNotFound, "no such endpoint"))
	})
	mux := r
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		// RFC 9110 section 15.5.6: a 405 lists the methods the resource has.
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
			if mux.Match(chi.NewRouteContext(), m, r.URL.Path) {
				allow = append(allow, m)
				if m == http.MethodGet {
					allow = append(allow, http.MethodHead)
				}
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.fail(w, r, problem.New(http.StatusMethodNotAllowed, "method not allowed on this endpoint"))
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))

	strict := oapi.NewStrictHandlerWithOptions(handlers{s}, nil, oapi.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  s.decodeError,
		ResponseErrorHandlerFunc: s.fail,
	})
	oapi.HandlerWithOptions(strict, oapi.ChiServerOptions{
		BaseRouter:       r.With(s.gate),
		ErrorHandlerFunc: s.paramError,
	})
	return r
}

// fail writes the problem for err, logging it when it is internal.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch _, ok := problem.Classify(err); {
	case !ok:
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("request failed")
	case errors.Is(err, secrets.ErrUnavailable):
		// The store's errors name what failed (never a secret or token), which
		// is what an operator needs to see when callers get 503s.
		zerolog.Ctx(r.Context()).Warn().Err(err).Msg("secret store unavailable")
	}
	problem.Write(w, err, requestID(r.Context()))
}

// decodeError answers a body that passed validation against the contract
// but does not decode into the generated types. The one case known is a
// JSON number with a fraction or exponent where an integer is expected
// ({"ttlSeconds": 60.0}), which the schema accepts as an integer and
// encoding/json refuses: a 422 naming the field, like other wrong values.
func (s *Server) decodeError(w http.ResponseWriter, r *http.Request, err error) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		reason := "value has the wrong type"
		switch te.Type.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			reason = "must be an integer written without a fraction or exponent"
		}
		s.fail(w, r, problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
			problem.FieldError{Field: te.Field, Reason: reason}))
		return
	}
	s.fail(w, r, problem.New(http.StatusBadRequest, "the request body could not be decoded"))
}

// paramError answers a path, query or header parameter that the generated
// router could not bind (validation normally catches these first).
func (s *Server) paramError(w http.ResponseWriter, r *http.Request, err error) {
	field := "request"
	var (
		fe *oapi.InvalidParamFormatError
		re *oapi.RequiredParamError
		he *oapi.RequiredHeaderError
		te *oapi.TooManyValuesForParamError
	)
	switch {
	case errors.As(err, &fe):
		field = fe.ParamName
	case errors.As(err, &re):
		field = re.ParamName
	case errors.As(err, &he):
		field = he.ParamName
	case errors.As(err, &te):
		field = te.ParamName
	}
	s.fail(w, r, problem.New(http.StatusBadRequest, "the request is malformed",
		problem.FieldError{Field: field, Reason: "invalid value"}))
}
