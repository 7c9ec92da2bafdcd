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

// Config holds the HTTP settings of a Server; what the domain needs
// (store, tokens, clocks, caches, clouds) is the service's (service.Config).
type Config struct {
	// Logger receives the access log and errors (JSON), and the audit
	// events when the service has no audit sink of its own.
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
	// MaxBodyBytes caps request bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
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
	// AccessLogSample writes the access line of one in this many
	// successful credential issues (2xx of issueCredentials); 1 or less
	// writes every one, and AccessLogOff none. Every other request, and
	// every failed one, is always logged.
	AccessLogSample int
	// AccessLogOff writes no access line for successful credential issues.
	AccessLogOff bool
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
	// planes are the handlers of each plane (Handler).
	planes map[Plane]http.Handler
	// sample decides which successful issues get an access line.
	sample *sampler
}

// operation is one operation of the contract, as the gate needs it: all
// of it is read from openapi.yaml when the server is built, so that what
// the gate does for an operation is declared there, never keyed on its
// name in code.
type operation struct {
	route *routers.Route
	// params are the parameters the gate validates, in kin-openapi's order
	// (the path item's not overridden, then the operation's).
	params []*openapi3.Parameter
	// paramChecks are the precompiled checks of params, when they fit.
	paramChecks paramChecks
	// roles may call it; nil for a public operation.
	roles []string
	// body is the media type and schema of a JSON body (mediaType "" when
	// the operation takes none, or streams it).
	body struct {
		mediaType string
		required  bool
		schema    *openapi3.SchemaRef
	}
	// stream: the body is NDJSON, read line by line by the handler
	// (see streamBody), not read whole and validated by the gate.
	stream bool
	// lineSchema is the schema of each line of a streamed body
	// (x-credsign-line-schema).
	lineSchema *openapi3.Schema
	// issues: the operation issues credentials (x-credsign-issues): its
	// refusals count in the issue metrics and the access lines of its
	// successes are sampled (Config.AccessLogSample).
	issues bool
	// planes are the planes that serve it (see operationPlanes).
	planes planeSet
	// scope says how a scoped token's scope applies (x-credsign-scope:
	// service.ScopeDevice, ScopeGroup, ScopeFilter or ScopeNone).
	scope string
}

// New builds the HTTP layer of svc. The Server serves every operation
// (one listener, for development); Handler gives the handler of one plane.
func New(svc *service.Service, cfg Config) (*Server, error) {
	if svc == nil {
		return nil, errors.New("api: a service is required")
	}
	ops, err := specOperations()
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{
		svc:      svc,
		ops:      ops,
		redact:   newRedactor(svc.AdminTokens(), service.TokenKinds),
		log:      cfg.Logger,
		metrics:  svc.Metrics(),
		maxBody:  cfg.MaxBodyBytes,
		now:      svc.Now,
		specYAML: credsign.OpenAPI,
		sample:   newSampler(cfg.AccessLogSample, cfg.AccessLogOff),
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
	s.imports = newImportLimits(cfg)
	s.ready = &readiness{ping: svc.Ping, now: s.now, cacheFor: cfg.ReadyCacheFor}
	if s.ready.cacheFor == 0 {
		s.ready.cacheFor = DefaultReadyCacheFor
	}
	s.handler = s.routes(PlaneAll)
	s.planes = map[Plane]http.Handler{PlaneAll: s.handler, PlaneDevice: s.routes(PlaneDevice), PlaneAdmin: s.routes(PlaneAdmin)}
	return s, nil
}

// specOperations loads the embedded contract and indexes its operations by
// method and path template, which are also chi's route patterns. It
// refuses a contract whose secured operations do not all say which roles
// may call them: x-credsign-roles is the one declaration of who may call
// what; and one whose operations do not all say how a token's scope
// applies (x-credsign-scope).
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
			o.params = operationParams(item, op)
			o.paramChecks = newParamChecks(o.params)
			if err := o.readBody(doc); err != nil {
				return nil, fmt.Errorf("openapi.yaml %s %s: %w", method, path, err)
			}
			if o.issues, err = operationIssues(op); err != nil {
				return nil, fmt.Errorf("openapi.yaml %s %s: %w", method, path, err)
			}
			if o.scope, err = operationScope(path, op); err != nil {
				return nil, fmt.Errorf("openapi.yaml %s %s: %w", method, path, err)
			}
			if op.Security == nil || len(*op.Security) > 0 {
				if o.roles, err = operationRoles(op); err != nil {
					return nil, fmt.Errorf("openapi.yaml %s %s: %w", method, path, err)
				}
			}
			if o.planes, err = operationPlanes(op, o.roles); err != nil {
				return nil, fmt.Errorf("openapi.yaml %s %s: %w", method, path, err)
			}
			ops[method+" "+path] = o
		}
	}
	return ops, nil
}

// operation returns the operation of the contract at method and route
// pattern (the key of ops, built on the stack: no allocation per request).
func (s *Server) operation(method, pattern string) (*operation, bool) {
	var buf [96]byte
	key := append(append(append(buf[:0], method...), ' '), pattern...)
	op, ok := s.ops[string(key)]
	return op, ok
}

// operationParams lists the parameters of op at item as kin-openapi's
// ValidateRequest visits them: the path item's that op does not override,
// then op's own.
func operationParams(item *openapi3.PathItem, op *openapi3.Operation) []*openapi3.Parameter {
	var params []*openapi3.Parameter
	for _, ref := range item.Parameters {
		if op.Parameters.GetByInAndName(ref.Value.In, ref.Value.Name) == nil {
			params = append(params, ref.Value)
		}
	}
	for _, ref := range op.Parameters {
		params = append(params, ref.Value)
	}
	return params
}

// readBody records what the operation's request body is: a JSON document
// of one media type (application/json, or application/merge-patch+json
// for a PATCH) with its schema, or an NDJSON stream whose lines follow the
// schema its x-credsign-line-schema names.
func (o *operation) readBody(doc *openapi3.T) error {
	rb := o.route.Operation.RequestBody
	if rb == nil {
		return nil
	}
	content := rb.Value.Content
	if mt := content.Get(ndjson); mt != nil {
		o.stream = true
		var ref string
		if mt.Schema != nil {
			raw, _ := mt.Schema.Value.Extensions[lineSchemaExtension].(map[string]any)
			ref, _ = raw["$ref"].(string)
		}
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		if s := doc.Components.Schemas[name]; ok && s != nil && s.Value != nil {
			o.lineSchema = s.Value
			return nil
		}
		return fmt.Errorf("the %s body of %s has no %s naming a schema of the components", ndjson, o.route.Operation.OperationID, lineSchemaExtension)
	}
	want := "application/json"
	if content.Get(want) == nil {
		for mt := range content {
			want = mt
		}
	}
	o.body.mediaType, o.body.required = want, rb.Value.Required
	if mt := content.Get(want); mt != nil {
		o.body.schema = mt.Schema
	}
	return nil
}

// lineSchemaExtension is the schema extension of openapi.yaml, on the
// schema of an NDJSON request body, that names the schema of each line.
const lineSchemaExtension = "x-credsign-line-schema"

// issuesExtension is the operation extension of openapi.yaml that marks
// the operation issuing credentials (x-credsign-issues: true).
const issuesExtension = "x-credsign-issues"

// operationIssues reports whether op issues credentials.
func operationIssues(op *openapi3.Operation) (bool, error) {
	raw, ok := op.Extensions[issuesExtension]
	if !ok {
		return false, nil
	}
	if b, _ := raw.(bool); !b {
		return false, fmt.Errorf("operation %s: %s is %v, not true", op.OperationID, issuesExtension, raw)
	}
	return true, nil
}

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

// ServeHTTP implements http.Handler: every operation of every plane, for
// one listener (development).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Handler returns the handler of one plane: what another plane serves is
// answered 404, as a path that does not exist is.
func (s *Server) Handler(p Plane) http.Handler {
	return s.planes[p]
}

// routes builds the handler of plane p.
func (s *Server) routes(p Plane) http.Handler {
	r := chi.NewRouter()
	// GetHead serves HEAD as the GET it mirrors (RFC 9110 section 9.3.2);
	// net/http sends only the headers, and the log keeps the method HEAD.
	r.Use(s.observe(p), s.recoverPanics, middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, problem.New(http.StatusNotFound, "no such endpoint"))
	})
	mux := r
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		// RFC 9110 section 15.5.6: a 405 lists the methods the resource has.
		// Only the methods this plane serves: another plane's are not there.
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodPost, http.MethodDelete} {
			rc := chi.NewRouteContext()
			if !mux.Match(rc, m, r.URL.Path) {
				continue
			}
			if op, ok := s.operation(m, rc.RoutePattern()); ok && !op.planes.has(p) {
				continue
			}
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		if len(allow) == 0 {
			s.fail(w, r, problem.New(http.StatusNotFound, "no such endpoint"))
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.fail(w, r, problem.New(http.StatusMethodNotAllowed, "method not allowed on this endpoint"))
	})
	if p != PlaneDevice {
		r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	}

	strict := oapi.NewStrictHandlerWithOptions(handlers{s}, nil, oapi.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  s.decodeError,
		ResponseErrorHandlerFunc: s.fail,
	})
	oapi.HandlerWithOptions(strict, oapi.ChiServerOptions{
		BaseRouter:       r.With(s.gate(p)),
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
