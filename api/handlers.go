package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/api/problem"
	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
)

// handlers implements the strict server interface generated from
// openapi.yaml: each decodes what the contract delivered, calls the service
// and encodes the result. Who may call what was checked by the gate (from
// the contract) before the handler runs. Failures are returned as errors
// and written by Server.fail.
type handlers struct{ s *Server }

var _ oapi.StrictServerInterface = handlers{}

// readyTimeout bounds the store ping of /readyz.
const readyTimeout = 3 * time.Second

var noStore = "no-store"

// GetHealthz implements oapi.StrictServerInterface.
func (h handlers) GetHealthz(context.Context, oapi.GetHealthzRequestObject) (oapi.GetHealthzResponseObject, error) {
	return oapi.GetHealthz200JSONResponse{Status: oapi.HealthStatusOk}, nil
}

// GetReadyz implements oapi.StrictServerInterface.
func (h handlers) GetReadyz(ctx context.Context, _ oapi.GetReadyzRequestObject) (oapi.GetReadyzResponseObject, error) {
	health, err := h.s.ready.check(ctx)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("store not ready")
		return nil, err
	}
	if health.Degraded {
		detail := "the secret store is unavailable; devices in the cache get credentials, nothing can be written"
		zerolog.Ctx(ctx).Warn().Time("staleUntil", health.StaleUntil).Msg("store unavailable; serving cached devices")
		return oapi.GetReadyz200JSONResponse{Status: oapi.HealthStatusDegraded, Detail: &detail, StaleUntil: &health.StaleUntil}, nil
	}
	return oapi.GetReadyz200JSONResponse{Status: oapi.HealthStatusOk}, nil
}

// GetOpenAPI implements oapi.StrictServerInterface.
func (h handlers) GetOpenAPI(context.Context, oapi.GetOpenAPIRequestObject) (oapi.GetOpenAPIResponseObject, error) {
	return oapi.GetOpenAPI200ApplicationyamlResponse{
		Body:          bytes.NewReader(h.s.specYAML),
		ContentLength: int64(len(h.s.specYAML)),
	}, nil
}

// ListClouds implements oapi.StrictServerInterface.
func (h handlers) ListClouds(context.Context, oapi.ListCloudsRequestObject) (oapi.ListCloudsResponseObject, error) {
	return oapi.ListClouds200JSONResponse(CloudList(h.s.svc.Clouds())), nil
}

// CloudList is the API's description of clouds, the body of GET /v1/clouds
// (and of `credsign clouds --json`).
func CloudList(clouds []service.CloudInfo) oapi.CloudList {
	out := oapi.CloudList{Clouds: make([]oapi.Cloud, 0, len(clouds))}
	for _, c := range clouds {
		oc := oapi.Cloud{
			Name:                c.Name,
			Title:               c.Title,
			SecretFormat:        c.SecretFormat,
			DefaultTtlSeconds:   int64(c.DefaultTTL / time.Second),
			MaxTtlSeconds:       int64(c.MaxTTL / time.Second),
			MaxDeviceTtlSeconds: int64(c.MaxDeviceTTL / time.Second),
			Tokens:              &c.Tokens,
			Params:              make([]oapi.ParamSpec, 0, len(c.Params)),
		}
		oc.MaxTtlNote = optional(c.MaxTTLNote)
		for _, p := range c.Params {
			ps := oapi.ParamSpec{Name: p.Name, Type: oapi.ParamSpecType(p.Type), Description: p.Description, Required: p.Required}
			if p.Default != nil {
				d := p.Default
				ps.Default = &d
			}
			if len(p.Allowed) > 0 {
				a := append([]any(nil), p.Allowed...)
				ps.Allowed = &a
			}
			oc.Params = append(oc.Params, ps)
		}
		out.Clouds = append(out.Clouds, oc)
	}
	return out
}

// ListDevices implements oapi.StrictServerInterface.
func (h handlers) ListDevices(ctx context.Context, req oapi.ListDevicesRequestObject) (oapi.ListDevicesResponseObject, error) {
	q := service.ListQuery{Cloud: deref(req.Params.Cloud), Group: deref(req.Params.Group), Labels: map[string]string{}}
	q.After, q.Limit = page(req.Params.After, req.Params.Limit)
	if req.Params.Label != nil {
		for _, l := range *req.Params.Label {
			k, v, _ := strings.Cut(l, "=")
			if w, ok := q.Labels[k]; ok && w != v {
				// One label cannot have two values: nothing matches.
				return oapi.ListDevices200JSONResponse{Devices: []oapi.Device{}}, nil
			}
			q.Labels[k] = v
		}
	}
	q.Scope = caller(ctx).Scope
	page, err := h.s.svc.ListDevices(ctx, q)
	if err != nil {
		return nil, err
	}
	out := oapi.ListDevices200JSONResponse{Devices: make([]oapi.Device, len(page.Devices)), Next: optional(page.Next), Scanned: &page.Scanned}
	for i, d := range page.Devices {
		out.Devices[i] = apiDevice(d)
	}
	if page.Partial {
		reason := fmt.Sprintf("the scan budget ran out after %d records; continue with after=%s", page.Scanned, page.Next)
		out.Partial, out.Reason = &page.Partial, &reason
	}
	return out, nil
}

// apiDevice is the API's form of a stored device (never its secret).
func apiDevice(d secrets.Device) oapi.Device {
	labels := oapi.Labels{}
	maps.Copy(labels, d.Labels)
	params := map[string]oapi.ParamValue{}
	maps.Copy(params, d.Params)
	out := oapi.Device{
		Id:            d.ID,
		Cloud:         d.Cloud,
		Group:         optional(d.Group),
		Params:        params,
		Labels:        labels,
		SecretVersion: max(d.SecretVersion, 1),
		Version:       d.Version,
		CreatedAt:     d.CreatedAt.UTC(),
		UpdatedAt:     d.UpdatedAt.UTC(),
		RequireKey:    optionalTrue(d.RequireKey),
	}
	if d.SecretRotatedAt != nil {
		at := d.SecretRotatedAt.UTC()
		out.SecretRotatedAt = &at
	}
	return out
}

// GetDevice implements oapi.StrictServerInterface.
func (h handlers) GetDevice(ctx context.Context, req oapi.GetDeviceRequestObject) (oapi.GetDeviceResponseObject, error) {
	d, err := h.s.svc.GetDevice(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	tag := etag(d)
	return oapi.GetDevice200JSONResponse{Body: apiDevice(d), Headers: oapi.GetDevice200ResponseHeaders{ETag: &tag}}, nil
}

// PutDevice implements oapi.StrictServerInterface.
func (h handlers) PutDevice(ctx context.Context, req oapi.PutDeviceRequestObject) (oapi.PutDeviceResponseObject, error) {
	cond, err := precondition(req.Params.IfMatch, req.Params.IfNoneMatch != nil)
	if err != nil {
		return nil, err
	}
	var doc service.Document
	if req.Body != nil {
		doc = service.Document{Cloud: deref(req.Body.Cloud), Params: deref(req.Body.Params), Secret: req.Body.Secret,
			Labels: deref(req.Body.Labels), Group: deref(req.Body.Group), RequireKey: deref(req.Body.RequireKey)}
	}
	stored, created, err := h.s.svc.PutDevice(ctx, caller(ctx), req.Id, doc, cond)
	if err != nil {
		return nil, err
	}
	tag := etag(stored)
	if created {
		return oapi.PutDevice201JSONResponse{Body: apiDevice(stored), Headers: oapi.PutDevice201ResponseHeaders{ETag: &tag}}, nil
	}
	return oapi.PutDevice200JSONResponse{Body: apiDevice(stored), Headers: oapi.PutDevice200ResponseHeaders{ETag: &tag}}, nil
}

// precondition turns If-Match (nil when absent) and whether If-None-Match
// was sent into the service's condition.
func precondition(ifMatch *string, ifNoneMatch bool) (service.Precondition, error) {
	switch {
	case ifMatch != nil && ifNoneMatch:
		return service.Precondition{}, problem.New(http.StatusBadRequest, "send If-Match or If-None-Match, not both")
	case ifNoneMatch:
		return service.Precondition{MustNotExist: true}, nil
	case ifMatch == nil:
		return service.Precondition{}, nil
	}
	m, ok := parseIfMatch(*ifMatch)
	if !ok {
		return service.Precondition{}, problem.New(http.StatusBadRequest, "the request is malformed",
			problem.FieldError{Field: "header.If-Match", Reason: "not a list of entity tags"})
	}
	return service.Precondition{Match: func(cur secrets.Device) bool { return m.matches(tagOf(cur)) }}, nil
}

// DeleteDevice implements oapi.StrictServerInterface.
func (h handlers) DeleteDevice(ctx context.Context, req oapi.DeleteDeviceRequestObject) (oapi.DeleteDeviceResponseObject, error) {
	if err := h.s.svc.DeleteDevice(ctx, caller(ctx), req.Id); err != nil {
		return nil, err
	}
	return oapi.DeleteDevice204Response{}, nil
}

// IssueCredentials implements oapi.StrictServerInterface.
func (h handlers) IssueCredentials(ctx context.Context, req oapi.IssueCredentialsRequestObject) (oapi.IssueCredentialsResponseObject, error) {
	var ttl time.Duration
	if req.Body != nil && req.Body.TtlSeconds != nil {
		ttl = time.Duration(*req.Body.TtlSeconds) * time.Second
	}
	c, err := h.s.svc.Issue(ctx, caller(ctx), req.Id, ttl)
	if err != nil {
		return nil, err
	}
	r := &credentialsResponse{}
	r.Body, r.Headers.CacheControl = apiCredentials(c, &r.held), &noStore
	return r, nil
}

// apiCredentials is the API's form of signed credentials. Its optional
// members point into held (one array, not one allocation a member): the
// ALPN, then the topics.
func apiCredentials(c cloud.Credentials, held *[15]string) oapi.Credentials {
	held[0] = c.ALPN
	return oapi.Credentials{
		DeviceId: c.DeviceID, Cloud: c.Cloud, ClientId: c.ClientID, Username: c.Username, Password: c.Password,
		Host: c.Host, Port: c.Port, Tls: c.TLS, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt,
		ExpiryEnforced: c.ExpiryEnforced, RefreshAfter: c.RefreshAfter, Topics: apiTopics(c.Topics, (*[14]string)(held[1:])),
		Alpn: optionalAt(&held[0]),
	}
}

// apiTopics is the API's form of a cloud's topics, its optional members
// pointing into held. (The agent's client is generated from the same
// contract, so the contract's type stays its own rather than the cloud
// core's: the agent carries no recipe code.)
func apiTopics(t cloud.Topics, held *[14]string) oapi.Topics {
	*held = [14]string{t.CommandResponse, t.PropertyReport, t.PropertyReply, t.PropertySet, t.Actions, t.Events,
		t.ShadowUpdate, t.ShadowDelta, t.Methods, t.MethodResponse, t.TwinResponse, t.TwinGet, t.TwinReported, t.TwinDesired}
	opt := func(i int) *string { return optionalAt(&held[i]) }
	return oapi.Topics{
		Telemetry: t.Telemetry, Commands: t.Commands,
		CommandResponse: opt(0), PropertyReport: opt(1), PropertyReply: opt(2), PropertySet: opt(3),
		Actions: opt(4), Events: opt(5), ShadowUpdate: opt(6), ShadowDelta: opt(7),
		Methods: opt(8), MethodResponse: opt(9), TwinResponse: opt(10), TwinGet: opt(11),
		TwinReported: opt(12), TwinDesired: opt(13),
	}
}

// optionalAt returns nil when *s is "", else s.
func optionalAt(s *string) *string {
	if *s == "" {
		return nil
	}
	return s
}

// optional returns nil for "", else a pointer to s.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// credentialsResponse is the generated 200 response of issueCredentials,
// written without encoding/json's HTML escaping: usernames and passwords
// of several clouds contain '&', and "\u0026" in the body is valid JSON but wrong
// when copied from curl's output or cut out with sed into an MQTT client.
// The strings its body's optional members point to are held in it: an
// issue's answer is one allocation.
type credentialsResponse struct {
	oapi.IssueCredentials200JSONResponse
	held [15]string
}

// VisitIssueCredentialsResponse implements oapi.IssueCredentialsResponseObject.
// (A pointer: the body is written from where the handler put it, not
// from a copy.)
func (r *credentialsResponse) VisitIssueCredentialsResponse(w http.ResponseWriter) error {
	pooled := credentialBufs.Get().(*[]byte)
	body, ok := credentialsWire.appendLine((*pooled)[:0], &r.Body)
	defer func() {
		// The buffers held a password: wipe them before they are used again.
		clear((*pooled)[:cap(*pooled)])
		clear(body[:cap(body)])
		*pooled = body[:0]
		credentialBufs.Put(pooled)
	}()
	if !ok {
		// A time encoding/json refuses: its error, as before.
		buf := bytes.NewBuffer(body[:0])
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r.Body); err != nil {
			return fmt.Errorf("encoding credentials: %w", err)
		}
		body = buf.Bytes()
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	if r.Headers.CacheControl != nil {
		if *r.Headers.CacheControl == noStore {
			h["Cache-Control"] = cacheControlNoStore
		} else {
			h.Set("Cache-Control", *r.Headers.CacheControl)
		}
	}
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	return nil
}

// contentTypeJSON and cacheControlNoStore are header values shared by
// every answer (net/http only reads them): setting them costs no
// allocation on the warm issuance path.
var (
	contentTypeJSON     = []string{"application/json"}
	cacheControlNoStore = []string{"no-store"}
)

// credentialBufs keeps the buffers credentials are encoded in, each wiped
// before it goes back.
var credentialBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// credentialsWire writes the body of an issue, as encoding/json would.
var credentialsWire = mustWireEncoder(reflect.TypeFor[oapi.Credentials]())

// GetJWKS implements oapi.StrictServerInterface.
func (h handlers) GetJWKS(ctx context.Context, _ oapi.GetJWKSRequestObject) (oapi.GetJWKSResponseObject, error) {
	set, err := h.s.svc.JWKS(ctx)
	if err != nil {
		return nil, err
	}
	return jwksResponse(set), nil
}

// jwksResponse is the key set as the cloud core wrote it (the generated
// type would drop the members of each key that are not in the contract).
type jwksResponse []byte

// VisitGetJWKSResponse implements oapi.GetJWKSResponseObject.
func (r jwksResponse) VisitGetJWKSResponse(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(r); err != nil {
		return fmt.Errorf("writing the JWKS: %w", err)
	}
	return nil
}

// RotateJWTKey implements oapi.StrictServerInterface.
func (h handlers) RotateJWTKey(ctx context.Context, _ oapi.RotateJWTKeyRequestObject) (oapi.RotateJWTKeyResponseObject, error) {
	kid, err := h.s.svc.RotateJWTKey(ctx, caller(ctx))
	if err != nil {
		return nil, err
	}
	return oapi.RotateJWTKey200JSONResponse{Kid: kid}, nil
}
