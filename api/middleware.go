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
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"
	"github.com/rs/xid"
	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api/auth"
	"github.com/credsign/credsign/api/metrics"
	"github.com/credsign/credsign/api/problem"
	"github.com/credsign/credsign/api/ratelimit"
	"github.com/credsign/credsign/secrets"
)

// validRequestID is the form of a caller-supplied X-Request-Id that the
// server keeps; any other value is replaced by a fresh ID.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// unsupportedProperty matches kin-openapi's reason for a field that
// additionalProperties: false forbids.
var unsupportedProperty = regexp.MustCompile(`^property "(.{1,128})" is unsupported$`)

type requestKey struct{}

// requestInfo is what the access log learns about a request from the
// middleware and handlers further in.
type requestInfo struct {
	id string

	mu     sync.Mutex
	caller auth.Principal
}

func (ri *requestInfo) setCaller(p auth.Principal) {
	ri.mu.Lock()
	ri.caller = p
	ri.mu.Unlock()
}

func (ri *requestInfo) getCaller() auth.Principal {
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

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe gives each request an ID and a logger, and when it is done writes
// the access log line and the latency metric. It logs neither headers nor
// the query string nor bodies.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID.MatchString(id) {
			id = xid.New().String()
		}
		w.Header().Set("X-Request-Id", id)
		info := &requestInfo{id: id}
		logger := s.log.With().Str("requestId", id).Logger()
		ctx := logger.WithContext(context.WithValue(r.Context(), requestKey{}, info))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))

		d := time.Since(start)
		route := "unmatched"
		if rc := chi.RouteContext(ctx); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.metrics.ObserveRequest(route, r.Method, sw.status, d)
		caller := info.getCaller()
		logger.Info().
			Str("method", r.Method).
			Str("path", redactPath(r.URL.Path)).
			Str("route", route).
			Int("status", sw.status).
			Int64("bytes", sw.bytes).
			Dur("durationMs", d).
			Str("remote", r.RemoteAddr).
			Str("tokenId", caller.TokenID).
			Str("role", caller.Role).
			Msg("request")
	})
}

// redactPath replaces path segments that look like token texts, so that a
// token pasted into a URL by mistake does not reach the log.
func redactPath(p string) string {
	if !strings.Contains(p, "_") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		for _, prefix := range []string{auth.PrefixProvisioner, auth.PrefixDevice, auth.PrefixAdmin} {
			if strings.HasPrefix(seg, prefix) {
				segs[i] = "REDACTED"
			}
		}
	}
	return strings.Join(segs, "/")
}

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

// gate runs before every operation of the contract: it authenticates the
// caller (unless the operation is public), applies the per-token rate
// limit, caps and checks the body, and validates the request against
// openapi.yaml. Handlers see only requests that passed all of it.
func (s *Server) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, pathParams, err := s.router.FindRoute(r)
		if err != nil {
			s.fail(w, r, problem.New(http.StatusNotFound, "no such endpoint"))
			return
		}
		if !public(route) {
			p, err := s.authn.Authenticate(r.Context(), r.Header.Get("Authorization"))
			if err != nil {
				s.fail(w, r, err)
				return
			}
			if ri, ok := r.Context().Value(requestKey{}).(*requestInfo); ok {
				ri.setCaller(p)
			}
			if ok, wait := s.limiterFor(p).Allow(p.TokenID, s.now()); !ok {
				pe := problem.New(http.StatusTooManyRequests, "too many requests for this token; retry after "+strconv.Itoa(int(wait.Seconds()))+"s")
				pe.RetryAfter = int(wait.Seconds())
				s.fail(w, r, pe)
				return
			}
			if err := s.authorize(route, pathParams, p); err != nil {
				if route.Operation.OperationID == "issueCredentials" {
					s.metrics.Issued("", metrics.OutcomeDenied)
				}
				s.fail(w, r, err)
				return
			}
			r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		}
		if err := s.readBody(w, r, route); err != nil {
			s.fail(w, r, err)
			return
		}
		err = openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
			Request:    r,
			PathParams: pathParams,
			Route:      route,
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		})
		if err != nil {
			s.fail(w, r, validationProblem(err))
			return
		}
		next.ServeHTTP(w, r)
	})
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
		case auth.RoleAdmin, secrets.RoleProvisioner, secrets.RoleDevice:
			roles = append(roles, role)
		default:
			return nil, fmt.Errorf("operation %s: unknown role %v in %s", op.OperationID, v, rolesExtension)
		}
	}
	return roles, nil
}

// authorize checks, before the body is read, that the caller's role may
// call the operation and that a device token names its own device, so
// that a caller who may not do something learns only that (403), not
// whether its body would have been valid.
func (s *Server) authorize(route *routers.Route, pathParams map[string]string, p auth.Principal) error {
	roles, err := operationRoles(route.Operation)
	if err != nil {
		return fmt.Errorf("authorizing: %w", err) // New refuses such a contract
	}
	if !slices.Contains(roles, p.Role) {
		return problem.New(http.StatusForbidden, "this token may not do that")
	}
	if p.Role == secrets.RoleDevice && pathParams["id"] != p.DeviceID {
		return problem.New(http.StatusForbidden, "a device token gets credentials for its own device only")
	}
	return nil
}

// limiterFor returns the rate limiter of the caller's role.
func (s *Server) limiterFor(p auth.Principal) *ratelimit.Limiter {
	if p.Role == secrets.RoleDevice {
		return s.deviceLimiter
	}
	return s.staffLimiter
}

// public reports whether the operation declares no security requirement.
func public(route *routers.Route) bool {
	sec := route.Operation.Security
	return sec != nil && len(*sec) == 0
}

// readBody reads the whole body under the size cap and checks that a body
// sent to an operation that takes one is JSON. It leaves the body in r for
// the validator and the handler.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, route *routers.Route) error {
	if r.Body == nil || r.Body == http.NoBody || route.Operation.RequestBody == nil {
		// Operations without a body ignore whatever was sent.
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return mbe
		}
		return problem.New(http.StatusBadRequest, "the request body could not be read")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return problem.New(http.StatusUnsupportedMediaType, "the request body must be application/json")
	}
	if !json.Valid(body) {
		return problem.New(http.StatusBadRequest, "the request body is not valid JSON",
			problem.FieldError{Field: "body", Reason: "not valid JSON"})
	}
	if !utf8.Valid(body) {
		// encoding/json would quietly turn the bad bytes into U+FFFD and
		// store a secret other than the one sent.
		return problem.New(http.StatusBadRequest, "the request body is not valid UTF-8",
			problem.FieldError{Field: "body", Reason: "not valid UTF-8"})
	}
	if field, dup := duplicateMember(body); dup {
		// Parsers disagree on which of two same-named members wins (Go
		// keeps the last): refuse the ambiguity instead of guessing.
		return problem.New(http.StatusBadRequest, "the request body names a member twice",
			problem.FieldError{Field: field, Reason: "duplicate member name"})
	}
	return nil
}

// duplicateMember reports whether an object in the valid JSON document
// body has two members of the same name, and names the first such member
// by its path ("params.deviceId").
func duplicateMember(body []byte) (string, bool) {
	type frame struct {
		object  bool
		wantKey bool
		key     string
		keys    map[string]bool
	}
	var stack []*frame
	path := func() string {
		var p []string
		for _, f := range stack {
			if f.object {
				p = append(p, f.key)
			}
		}
		return strings.Join(p, ".")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false // io.EOF: the whole document was read
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &frame{object: true, wantKey: true, keys: map[string]bool{}})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].wantKey = true
				}
			}
		case string:
			if top != nil && top.object && top.wantKey {
				top.key, top.wantKey = t, false
				if top.keys[t] {
					return path(), true
				}
				top.keys[t] = true
				continue
			}
			if top != nil && top.object {
				top.wantKey = true
			}
		default:
			if top != nil && top.object {
				top.wantKey = true
			}
		}
	}
}

// validationProblem turns a kin-openapi validation error into a problem
// that names the field. Only schema reasons (which never quote the value)
// and fixed texts reach the client.
func validationProblem(err error) error {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return problem.New(http.StatusBadRequest, "the request is malformed")
	}
	reason := "invalid value"
	var se *openapi3.SchemaError
	switch {
	case errors.As(re.Err, &se):
		reason = se.Reason
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		reason = "required"
	case re.Err == nil && re.Reason != "":
		reason = re.Reason
	}
	if re.Parameter != nil {
		return problem.New(http.StatusBadRequest, "the request is malformed",
			problem.FieldError{Field: re.Parameter.In + "." + re.Parameter.Name, Reason: reason})
	}
	field := "body"
	if se != nil {
		ptr := se.JSONPointer()
		if m := unsupportedProperty.FindStringSubmatch(se.Reason); m != nil {
			// An unknown field: name the field itself, not its parent.
			ptr = append(ptr, m[1])
		}
		if len(ptr) > 0 {
			field = strings.Join(ptr, ".")
		}
	}
	return problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
		problem.FieldError{Field: field, Reason: reason})
}
