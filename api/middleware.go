package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/go-chi/chi/v5"
	"github.com/rs/xid"
	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api/problem"
	"github.com/credsign/credsign/api/ratelimit"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
)

// validRequestID is the form of a caller-supplied X-Request-Id that the
// server keeps; any other value is replaced by a fresh ID.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// unsupportedProperty matches kin-openapi's reason for a field that
// additionalProperties: false forbids.
var unsupportedProperty = regexp.MustCompile(`^property "(.{1,128})" is unsupported$`)

type requestKey struct{}

// requestInfo is what the access log learns about a request from the
// middleware further in.
type requestInfo struct {
	id string

	mu     sync.Mutex
	caller service.Principal
	op     *operation
}

func (ri *requestInfo) setOperation(op *operation) {
	ri.mu.Lock()
	ri.op = op
	ri.mu.Unlock()
}

func (ri *requestInfo) getOperation() *operation {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.op
}

// operationOf returns the operation of the contract the gate let through.
func operationOf(ctx context.Context) *operation {
	if ri, ok := ctx.Value(requestKey{}).(*requestInfo); ok {
		return ri.getOperation()
	}
	return nil
}

func (ri *requestInfo) setCaller(p service.Principal) {
	ri.mu.Lock()
	ri.caller = p
	ri.mu.Unlock()
}

func (ri *requestInfo) getCaller() service.Principal {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.caller
}

func requestID(ctx context.Context) string {
	if ri, ok := ctx.Value(requestKey{}).(*requestInfo); ok {
		return ri.id
	}
	return ""
}

// caller returns the authenticated caller of the request (the gate put it
// in the context of every secured operation).
func caller(ctx context.Context) service.Principal {
	if ri, ok := ctx.Value(requestKey{}).(*requestInfo); ok {
		return ri.getCaller()
	}
	return service.Principal{}
}

// observe gives each request an ID, a logger and the service's audit
// logger, and when it is done writes the access log line and the latency
// metric. It logs neither headers nor the query string nor bodies, and no
// token found in the path. Successful credential issues are logged as
// Config.AccessLogSample says; every other request always.
func (s *Server) observe(p Plane) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get("X-Request-Id")
			if id == "" || !validRequestID.MatchString(id) {
				id = xid.New().String()
			}
			w.Header()["X-Request-Id"] = []string{id}
			st := &observed{info: requestInfo{id: id}, w: accessWriter{ResponseWriter: w}}
			logger := s.log.With().Str("requestId", id).Logger()
			ctx := logger.WithContext(context.WithValue(r.Context(), requestKey{}, &st.info))
			r = r.WithContext(s.svc.WithAudit(ctx, id))
			defer func() {
				s.logAccess(p, r, &logger, &st.info, st.w.status, st.w.bytes, time.Since(start))
			}()
			next.ServeHTTP(&st.w, r)
		})
	}
}

// observed is what observe keeps of one request, in one allocation: what
// the middleware further in learns, and the writer that counts the answer.
type observed struct {
	info requestInfo
	w    accessWriter
}

// logAccess records one answered request r of plane p: the latency metric,
// and the access line unless it is a successful issue that the sample
// leaves out. status 0 means nothing was written (200).
func (s *Server) logAccess(p Plane, r *http.Request, logger *zerolog.Logger, info *requestInfo, status, size int, d time.Duration) {
	route := "unmatched"
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		route = rc.RoutePattern()
	}
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.ObserveRequest(route, r.Method, status, d)
	if op := info.getOperation(); status < 300 && op != nil && op.issues && !s.sample.take() {
		return
	}
	caller := info.getCaller()
	logger.Info().
		Str("plane", string(p)).
		Str("method", r.Method).
		Str("path", s.redact.path(r.URL.Path)).
		Str("route", route).
		Int("status", status).
		Int("bytes", size).
		Dur("durationMs", d).
		Str("remote", r.RemoteAddr).
		Str("tokenId", caller.TokenID).
		Str("role", caller.Role).
		Msg("request")
}

// accessWriter passes an answer through, recording its status (the first
// WriteHeader's; later ones are dropped, as hlog's writer did) and the
// bytes of its body for the access line. http.ResponseController reaches
// the connection's writer through Unwrap (flushing an import's results).
// One is kept in observed, not allocated apart.
type accessWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

// WriteHeader implements http.ResponseWriter.
func (w *accessWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.ResponseWriter.WriteHeader(code)
	}
}

// Write implements http.ResponseWriter.
func (w *accessWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// Unwrap returns the writer underneath, for http.ResponseController.
func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher (the generated streaming answers look for
// it) by flushing the writer underneath.
func (w *accessWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// recoverPanics turns a handler panic into a logged 500.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				zerolog.Ctx(r.Context()).Error().Interface("panic", v).Msg("handler panicked")
				problem.Write(w, errors.New("panic"), requestID(r.Context()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// gate runs before every operation of the contract, after chi routed it:
// it authenticates the caller (unless the operation is public), applies the
// per-token rate limit, authorizes the caller by the roles the contract
// declares, caps and checks the body, and validates the request against
// openapi.yaml. Handlers see only requests that passed all of it. An
// operation that plane p does not serve is answered 404, before anything
// else, as a path that does not exist is.
func (s *Server) gate(p Plane) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler { return s.gatePlane(p, next) }
}

func (s *Server) gatePlane(plane Plane, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := chi.RouteContext(r.Context())
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		op, ok := s.operation(method, rc.RoutePattern())
		if !ok {
			s.fail(w, r, fmt.Errorf("no operation of openapi.yaml for %s %s", method, rc.RoutePattern()))
			return
		}
		if !op.planes.has(plane) {
			s.fail(w, r, problem.New(http.StatusNotFound, "no such endpoint"))
			return
		}
		info, _ := r.Context().Value(requestKey{}).(*requestInfo)
		if info != nil {
			info.setOperation(op)
		}
		if len(r.Header.Values("Authorization")) > 1 {
			// Which one did a proxy in front check? Refuse to guess.
			s.fail(w, r, problem.New(http.StatusBadRequest, "the request has more than one Authorization header"))
			return
		}
		params := routeParams{rc}
		if op.roles != nil {
			p, err := s.authenticate(w, r, op, params.get("id"))
			if err != nil {
				s.fail(w, r, err)
				return
			}
			if info != nil {
				info.setCaller(p)
			}
			if ok, wait := s.limiterFor(p).Allow(p.TokenID, s.now()); !ok {
				pe := problem.New(http.StatusTooManyRequests, "too many requests for this token; retry after "+strconv.Itoa(int(wait.Seconds()))+"s")
				pe.RetryAfter = int(wait.Seconds())
				s.fail(w, r, pe)
				return
			}
			err = s.svc.Authorize(p, service.Operation{
				Roles:    op.roles,
				DeviceID: params.get("id"),
				Issues:   op.issues,
			})
			if err != nil {
				s.fail(w, r, err)
				return
			}
			// A scoped token: the device or group the path names must be
			// inside its scope, or the answer is that of a missing one.
			err = s.svc.AuthorizeScope(r.Context(), p, op.scope, params.get(scopeParams[op.scope]), method == http.MethodPut)
			if err != nil {
				s.fail(w, r, err)
				return
			}
		}
		var doc any
		var err error
		if op.stream {
			err = s.streamBody(w, r)
		} else {
			doc, err = s.readBody(w, r, op)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.validate(r, op, params, doc); err != nil {
			s.fail(w, r, validationProblem(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate resolves the caller of a secured operation: by a DPoP
// proof alone (no Authorization header) on an operation a device may
// call, else by the bearer token, with the enrolment's proof when one is
// sent along. A device's bearer token is refused where the device or its
// group requires keys. The answer to a request with a proof, on those
// operations and enrolment, carries a fresh server nonce in DPoP-Nonce,
// refusals too (no nonce key is made for a deployment that sees no proof).
// deviceID is the path's {id} ("" when it has none).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, op *operation, deviceID string) (service.Principal, error) {
	ctx := r.Context()
	proofs := r.Header.Values("DPoP")
	devicePlane := slices.Contains(op.roles, secrets.RoleDevice) || slices.Contains(op.roles, service.RoleEnrolment)
	if devicePlane && len(proofs) > 0 {
		if n := s.svc.DPoPNonce(ctx); n != "" {
			w.Header().Set("DPoP-Nonce", n)
		}
	}
	auth := r.Header.Get("Authorization")
	if len(proofs) == 0 || !devicePlane {
		p, err := s.svc.Authenticate(ctx, auth)
		if err == nil && p.Role == secrets.RoleDevice {
			err = s.svc.CheckBearer(ctx, p)
		}
		return p, err
	}
	req := service.ProofRequest{Proof: proofs[0], Method: r.Method, TLS: r.TLS != nil, Host: r.Host,
		EscapedPath: r.URL.EscapedPath(), DeviceID: deviceID}
	if len(proofs) > 1 {
		req.Proof = "more.than.one" // refused as malformed: which one would a proxy have checked?
	}
	if auth == "" && slices.Contains(op.roles, secrets.RoleDevice) {
		return s.svc.AuthenticateProof(ctx, req)
	}
	p, err := s.svc.Authenticate(ctx, auth)
	if err != nil {
		return p, err
	}
	if p.Role == service.RoleEnrolment {
		return s.svc.ProveEnrolment(ctx, p, req)
	}
	if p.Role == secrets.RoleDevice {
		err = s.svc.CheckBearer(ctx, p)
	}
	return p, err
}

// rolesExtension is the operation extension of openapi.yaml that lists
// the roles allowed to call an operation.
const rolesExtension = "x-credsign-roles"

// operationRoles returns the roles an operation of the contract allows.
func operationRoles(op *openapi3.Operation) ([]string, error) {
	raw, ok := op.Extensions[rolesExtension]
	if !ok {
		return nil, fmt.Errorf("operation %s has no %s", op.OperationID, rolesExtension)
	}
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("operation %s: %s is not a list of roles", op.OperationID, rolesExtension)
	}
	roles := make([]string, 0, len(list))
	for _, v := range list {
		switch role, _ := v.(string); role {
		case service.RoleAdmin, secrets.RoleProvisioner, secrets.RoleDevice, service.RoleEnrolment:
			roles = append(roles, role)
		default:
			return nil, fmt.Errorf("operation %s: unknown role %v in %s", op.OperationID, v, rolesExtension)
		}
	}
	return roles, nil
}

// scopeExtension is the operation extension of openapi.yaml that says how
// a scoped token's scope applies to an operation (service.ScopeKinds).
const scopeExtension = "x-credsign-scope"

// scopeParams names the path parameter that holds the device or group an
// operation of each scope kind acts on.
var scopeParams = map[string]string{service.ScopeDevice: "id", service.ScopeGroup: "groupId"}

// operationScope returns how the scope applies to an operation of the
// contract at path; every operation must say, and a device or group
// operation must name its device or group in the path.
func operationScope(path string, op *openapi3.Operation) (string, error) {
	raw, ok := op.Extensions[scopeExtension]
	if !ok {
		return "", fmt.Errorf("operation %s has no %s", op.OperationID, scopeExtension)
	}
	kind, _ := raw.(string)
	if !slices.Contains(service.ScopeKinds, kind) {
		return "", fmt.Errorf("operation %s: %s is %v, not one of %v", op.OperationID, scopeExtension, raw, service.ScopeKinds)
	}
	if p, ok := scopeParams[kind]; ok && !strings.Contains(path, "{"+p+"}") {
		return "", fmt.Errorf("operation %s: %s %s, but its path has no {%s}", op.OperationID, scopeExtension, kind, p)
	}
	return kind, nil
}

// limiterFor returns the rate limiter of the caller's role: device tokens,
// enrolment tokens (a bucket of their own, lower than the staff rate: such
// a token can be read from any device of its batch), and admin and
// provisioner tokens.
func (s *Server) limiterFor(p service.Principal) *ratelimit.Limiter {
	switch p.Role {
	case secrets.RoleDevice:
		return s.deviceLimiter
	case service.RoleEnrolment:
		return s.enrolLimiter
	}
	return s.staffLimiter
}

// readBody reads the whole body under the size cap, checks that a body
// sent to an operation that takes one is JSON of its media type, and reads
// the document once (scanJSON), returning it for the schema. It leaves the
// bytes in r for the handler's decoding.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, op *operation) (any, error) {
	if r.Body == nil || r.Body == http.NoBody || op.body.mediaType == "" {
		// Operations without a body ignore whatever was sent.
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, mbe
		}
		return nil, problem.New(http.StatusBadRequest, "the request body could not be read")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		return nil, nil
	}
	if err := notEncoded(r); err != nil {
		return nil, err
	}
	want := op.body.mediaType
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != want {
		return nil, problem.New(http.StatusUnsupportedMediaType, "the request body must be "+want)
	}
	sc := scanJSON(body)
	switch {
	case sc.syntax:
		return nil, problem.New(http.StatusBadRequest, "the request body is not valid JSON",
			problem.FieldError{Field: "body", Reason: "not valid JSON"})
	case sc.badUTF8:
		// encoding/json would quietly turn the bad bytes into U+FFFD and
		// store a secret other than the one sent.
		return nil, problem.New(http.StatusBadRequest, "the request body is not valid UTF-8",
			problem.FieldError{Field: "body", Reason: "not valid UTF-8"})
	}
	if err := sc.problem(); err != nil {
		return nil, err
	}
	return sc.value, nil
}

// validationOptions are those of kin-openapi's validation of parameters.
var validationOptions = openapi3filter.Options{MultiError: true}

// validate checks the parameters of r and its body's document doc (nil:
// no body read) against the contract, as kin-openapi's ValidateRequest
// does, with every failure in one openapi3.MultiError: the parameters in
// the contract's order, then the body. Parameters that pass the
// operation's precompiled checks (paramChecks) are not given to
// kin-openapi. It leaves out the security requirements, which the gate
// checked (authenticate), and decodes no body: doc is the document
// scanJSON read.
func (s *Server) validate(r *http.Request, op *operation, params routeParams, doc any) error {
	var me openapi3.MultiError
	if !op.paramChecks.pass(params.get) {
		input := validationInput(r, op, params)
		for _, p := range op.params {
			if err := openapi3filter.ValidateParameter(r.Context(), input, p); err != nil {
				me = append(me, err)
			}
		}
	}
	if err := validateBody(r, op, params, doc); err != nil {
		me = append(me, err)
	}
	if len(me) > 0 {
		return me
	}
	return nil
}

// validationInput is kin-openapi's view of request r to operation op.
func validationInput(r *http.Request, op *operation, params routeParams) *openapi3filter.RequestValidationInput {
	return &openapi3filter.RequestValidationInput{Request: r, PathParams: params.toMap(), Route: op.route, Options: &validationOptions}
}

// routeParams are the path parameters chi matched for a request.
type routeParams struct{ rc *chi.Context }

// get returns the value of path parameter name ("" when there is none).
func (p routeParams) get(name string) string { return p.rc.URLParam(name) }

// toMap returns the parameters by name, as kin-openapi takes them.
func (p routeParams) toMap() map[string]string {
	m := make(map[string]string, len(p.rc.URLParams.Keys))
	for i, k := range p.rc.URLParams.Keys {
		m[k] = p.rc.URLParams.Values[i]
	}
	return m
}

// validateBody checks the document of a JSON body against the operation's
// schema as kin-openapi's ValidateRequestBody does, defaults written back
// into the body included.
func validateBody(r *http.Request, op *operation, params routeParams, doc any) error {
	if op.body.mediaType == "" {
		return nil
	}
	rb := op.route.Operation.RequestBody.Value
	if r.ContentLength <= 0 || r.Body == nil || r.Body == http.NoBody {
		if op.body.required {
			return &openapi3filter.RequestError{Input: validationInput(r, op, params), RequestBody: rb, Err: openapi3filter.ErrInvalidRequired}
		}
		return nil
	}
	input := validationInput(r, op, params)
	if ct := r.Header.Get("Content-Type"); rb.Content.Get(ct) == nil {
		return &openapi3filter.RequestError{Input: input, RequestBody: rb, Reason: fmt.Sprintf("header Content-Type has unexpected value %q", ct)}
	}
	if op.body.schema == nil {
		return nil
	}
	defaultsSet := false
	err := op.body.schema.Value.VisitJSON(doc, openapi3.VisitAsRequest(), openapi3.DefaultsSet(func() { defaultsSet = true }), openapi3.MultiErrors())
	if err != nil {
		return &openapi3filter.RequestError{Input: input, RequestBody: rb, Reason: "doesn't match schema", Err: err}
	}
	if defaultsSet {
		data, err := json.Marshal(doc)
		if err != nil {
			return &openapi3filter.RequestError{Input: input, RequestBody: rb, Reason: "rewriting body failed", Err: err}
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
		r.ContentLength = int64(len(data))
	}
	return nil
}

// validationProblem turns kin-openapi validation errors into one problem
// that names every offending field. Only schema reasons (which never quote
// the value) and fixed texts reach the client.
func validationProblem(err error) error {
	var errs []error
	var me openapi3.MultiError
	if errors.As(err, &me) {
		errs = me
	} else {
		errs = []error{err}
	}
	var fields []problem.FieldError
	status := http.StatusUnprocessableEntity
	for _, e := range errs {
		var re *openapi3filter.RequestError
		if !errors.As(e, &re) {
			return problem.New(http.StatusBadRequest, "the request is malformed")
		}
		if re.Parameter != nil {
			status = http.StatusBadRequest
		}
		fields = append(fields, requestErrorFields(re)...)
	}
	if status == http.StatusBadRequest {
		return problem.New(status, "the request is malformed", fields...)
	}
	return problem.New(status, service.DetailInvalid, fields...)
}

// requestErrorFields names the fields one kin-openapi request error is about.
func requestErrorFields(re *openapi3filter.RequestError) []problem.FieldError {
	var schemaErrs []*openapi3.SchemaError
	var me openapi3.MultiError
	if errors.As(re.Err, &me) {
		for _, e := range me {
			var se *openapi3.SchemaError
			if errors.As(e, &se) {
				schemaErrs = append(schemaErrs, se)
			}
		}
	} else {
		var se *openapi3.SchemaError
		if errors.As(re.Err, &se) {
			schemaErrs = append(schemaErrs, se)
		}
	}
	reason := "invalid value"
	switch {
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		reason = "required"
	case re.Err == nil && re.Reason != "":
		reason = re.Reason
	}
	if re.Parameter != nil {
		if len(schemaErrs) > 0 {
			reason = integerNumbers(schemaErrs[0].Reason)
		}
		return []problem.FieldError{{Field: re.Parameter.In + "." + re.Parameter.Name, Reason: reason}}
	}
	if len(schemaErrs) == 0 {
		return []problem.FieldError{{Field: "body", Reason: reason}}
	}
	var fields []problem.FieldError
	seen := map[string]bool{}
	for _, se := range schemaErrs {
		field := "body"
		ptr := se.JSONPointer()
		if m := unsupportedProperty.FindStringSubmatch(se.Reason); m != nil {
			// An unknown field: name the field itself, not its parent.
			ptr = append(ptr, m[1])
		}
		if len(ptr) > 0 {
			field = strings.Join(ptr, ".")
		}
		f := problem.FieldError{Field: field, Reason: integerNumbers(se.Reason)}
		if seen[f.Field+"\x00"+f.Reason] {
			continue
		}
		if len(fields) == maxProblemFields {
			return append(fields, problem.FieldError{Field: "body", Reason: "more fields are invalid (the first " + strconv.Itoa(maxProblemFields) + " are listed)"})
		}
		seen[f.Field+"\x00"+f.Reason] = true
		fields = append(fields, f)
	}
	return fields
}

// maxProblemFields is how many fields one problem document names: what a
// refusal costs, and what an import holds for a refused line until it is
// answered, stays small whatever the document held.
const maxProblemFields = 32

// floatNumber matches a number kin-openapi wrote in exponent form.
var floatNumber = regexp.MustCompile(`\b\d+(\.\d+)?e[+-]?\d+\b`)

// integerNumbers rewrites numbers in exponent form that are integers
// ("3.1536e+07") as plain integers ("31536000").
func integerNumbers(reason string) string {
	return floatNumber.ReplaceAllStringFunc(reason, func(n string) string {
		f, err := strconv.ParseFloat(n, 64)
		if err != nil || f != float64(int64(f)) {
			return n
		}
		return strconv.FormatInt(int64(f), 10)
	})
}

// notEncoded refuses a body with a Content-Encoding other than identity:
// reading compressed bytes as JSON would be a guess, and RFC 9110 section
// 8.4.1 says to answer an unsupported coding with 415.
func notEncoded(r *http.Request) error {
	for _, ce := range r.Header.Values("Content-Encoding") {
		for _, c := range strings.Split(ce, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				e := problem.New(http.StatusUnsupportedMediaType, "the request body must not be content-encoded (send it uncompressed)")
				e.Header = http.Header{"Accept-Encoding": {"identity"}}
				return e
			}
		}
	}
	return nil
}
