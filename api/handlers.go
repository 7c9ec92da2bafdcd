package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api/auth"
	"github.com/credsign/credsign/api/metrics"
	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/api/problem"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/signing"
)

// handlers implements the strict server interface generated from
// openapi.yaml. Failures are returned as errors and written by Server.fail.
type handlers struct{ s *Server }

var _ oapi.StrictServerInterface = handlers{}

// readyTimeout bounds the store ping of /readyz.
const readyTimeout = 3 * time.Second

// maxListScan bounds how many store pages one filtered listing reads.
const maxListScan = 20

var validLabelKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

var noStore = "no-store"

// GetHealthz implements oapi.StrictServerInterface.
func (h handlers) GetHealthz(context.Context, oapi.GetHealthzRequestObject) (oapi.GetHealthzResponseObject, error) {
	return oapi.GetHealthz200JSONResponse{Status: "ok"}, nil
}

// GetReadyz implements oapi.StrictServerInterface.
func (h handlers) GetReadyz(ctx context.Context, _ oapi.GetReadyzRequestObject) (oapi.GetReadyzResponseObject, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := h.s.store.Ping(ctx); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("store not ready")
		return nil, fmt.Errorf("pinging the store: %w", secrets.ErrUnavailable)
	}
	return oapi.GetReadyz200JSONResponse{Status: "ok"}, nil
}

// GetOpenAPI implements oapi.StrictServerInterface.
func (h handlers) GetOpenAPI(context.Context, oapi.GetOpenAPIRequestObject) (oapi.GetOpenAPIResponseObject, error) {
	return oapi.GetOpenAPI200ApplicationyamlResponse{
		Body:          bytes.NewReader(h.s.specYAML),
		ContentLength: int64(len(h.s.specYAML)),
	}, nil
}

// ListClouds implements oapi.StrictServerInterface.
func (h handlers) ListClouds(ctx context.Context, _ oapi.ListCloudsRequestObject) (oapi.ListCloudsResponseObject, error) {
	if _, err := auth.Require(ctx, auth.RoleAdmin, secrets.RoleProvisioner); err != nil {
		return nil, err
	}
	clouds := signing.Clouds()
	out := oapi.ListClouds200JSONResponse{Clouds: make([]oapi.Cloud, 0, len(clouds))}
	for _, c := range clouds {
		oc := oapi.Cloud{
			Name:              c.Name,
			Title:             c.Title,
			SecretFormat:      c.SecretFormat,
			DefaultTtlSeconds: int64(c.DefaultTTL / time.Second),
			MaxTtlSeconds:     int64(c.MaxTTL / time.Second),
			Params:            make([]oapi.ParamSpec, 0, len(c.Params)),
		}
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
	return out, nil
}

// ListDevices implements oapi.StrictServerInterface.
func (h handlers) ListDevices(ctx context.Context, req oapi.ListDevicesRequestObject) (oapi.ListDevicesResponseObject, error) {
	if _, err := auth.Require(ctx, auth.RoleAdmin, secrets.RoleProvisioner); err != nil {
		return nil, err
	}
	limit := 100
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	want := map[string]string{}
	if req.Params.Label != nil {
		for _, l := range *req.Params.Label {
			k, v, _ := strings.Cut(l, "=")
			if w, ok := want[k]; ok && w != v {
				// One label cannot have two values: nothing matches.
				return oapi.ListDevices200JSONResponse{Devices: []oapi.Device{}}, nil
			}
			want[k] = v
		}
	}
	opts := secrets.ListOptions{Limit: limit}
	if req.Params.Cloud != nil {
		opts.Cloud = *req.Params.Cloud
	}
	if req.Params.After != nil {
		opts.After = *req.Params.After
	}
	devices := make([]oapi.Device, 0, limit)
	next := ""
	for scanned := 0; ; scanned++ {
		page, err := h.s.store.ListDevices(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing devices: %w", err)
		}
		next = page.Next
		for _, d := range page.Devices {
			if !hasLabels(d.Labels, want) {
				continue
			}
			devices = append(devices, apiDevice(d))
			if len(devices) == limit {
				// Cut the page here; the next one starts after this device.
				next = d.ID
				break
			}
		}
		if len(devices) == limit || page.Next == "" {
			break
		}
		if scanned+1 >= maxListScan {
			// A filter that matches few devices: return what was found
			// and let the caller continue from where the scan stopped.
			break
		}
		opts.After = page.Next
	}
	out := oapi.ListDevices200JSONResponse{Devices: devices}
	if next != "" {
		out.Next = &next
	}
	return out, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func apiDevice(d secrets.Device) oapi.Device {
	labels := oapi.Labels{}
	maps.Copy(labels, d.Labels)
	params := map[string]oapi.ParamValue{}
	maps.Copy(params, d.Params)
	return oapi.Device{
		Id:        d.ID,
		Cloud:     d.Cloud,
		Params:    params,
		Labels:    labels,
		Version:   d.Version,
		CreatedAt: d.CreatedAt.UTC(),
		UpdatedAt: d.UpdatedAt.UTC(),
	}
}

// GetDevice implements oapi.StrictServerInterface.
func (h handlers) GetDevice(ctx context.Context, req oapi.GetDeviceRequestObject) (oapi.GetDeviceResponseObject, error) {
	if _, err := auth.Require(ctx, auth.RoleAdmin, secrets.RoleProvisioner); err != nil {
		return nil, err
	}
	d, err := h.s.store.GetDevice(ctx, req.Id)
	if err != nil {
		return nil, fmt.Errorf("reading device: %w", err)
	}
	tag := etag(d)
	return oapi.GetDevice200JSONResponse{Body: apiDevice(d), Headers: oapi.GetDevice200ResponseHeaders{ETag: &tag}}, nil
}

// PutDevice implements oapi.StrictServerInterface.
func (h handlers) PutDevice(ctx context.Context, req oapi.PutDeviceRequestObject) (oapi.PutDeviceResponseObject, error) {
	caller, err := auth.Require(ctx, auth.RoleAdmin, secrets.RoleProvisioner)
	if err != nil {
		return nil, err
	}
	if req.Body == nil || req.Body.Secret == nil {
		return nil, problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
			problem.FieldError{Field: "secret", Reason: "required"})
	}
	d, err := h.checkDocument(req.Id, *req.Body)
	if err != nil {
		return nil, err
	}
	ifVersion, err := h.precondition(ctx, req)
	if err != nil {
		return nil, err
	}
	stored, err := h.s.store.PutDevice(ctx, d, ifVersion)
	switch {
	case errors.Is(err, secrets.ErrConflict) && ifVersion == 0:
		return nil, problem.New(http.StatusConflict, "the device already exists")
	case (errors.Is(err, secrets.ErrConflict) || errors.Is(err, secrets.ErrNotFound)) && ifVersion > 0:
		return nil, problem.New(http.StatusPreconditionFailed, "the device changed; read it again and retry")
	case err != nil:
		return nil, fmt.Errorf("storing device: %w", err)
	}
	h.s.audit(ctx, caller, "device.put").Str("deviceId", stored.ID).Str("cloud", stored.Cloud).
		Int64("version", stored.Version).Msg("audit")
	tag := etag(stored)
	if stored.Version == 1 {
		return oapi.PutDevice201JSONResponse{Body: apiDevice(stored), Headers: oapi.PutDevice201ResponseHeaders{ETag: &tag}}, nil
	}
	return oapi.PutDevice200JSONResponse{Body: apiDevice(stored), Headers: oapi.PutDevice200ResponseHeaders{ETag: &tag}}, nil
}

// checkDocument validates a device document against its cloud's recipe,
// including a trial signature, and returns the record to store.
func (h handlers) checkDocument(id string, doc oapi.DeviceDocument) (secrets.Device, error) {
	if fields := controlFields(doc); len(fields) > 0 {
		return secrets.Device{}, problem.New(http.StatusUnprocessableEntity, "the request body is invalid", fields...)
	}
	params, err := signing.NormalizeParams(doc.Cloud, doc.Params)
	if err != nil {
		return secrets.Device{}, fmt.Errorf("checking params: %w", err)
	}
	if err := signing.ValidateSecret(doc.Cloud, *doc.Secret); err != nil {
		return secrets.Device{}, fmt.Errorf("checking the secret: %w", err)
	}
	if _, err := signing.Sign(signing.Request{Cloud: doc.Cloud, DeviceID: id, Params: params, Secret: *doc.Secret, Now: h.s.now()}); err != nil {
		return secrets.Device{}, fmt.Errorf("trial signature: %w", err)
	}
	labels := map[string]string{}
	if doc.Labels != nil {
		for k, v := range *doc.Labels {
			if !validLabelKey.MatchString(k) {
				return secrets.Device{}, problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
					problem.FieldError{Field: "labels", Reason: "label keys are 1 to 63 letters, digits, '.', '_', '/', '-', starting with a letter or digit"})
			}
			labels[k] = v
		}
	}
	return secrets.Device{ID: id, Cloud: doc.Cloud, Params: params, Secret: *doc.Secret, Labels: labels}, nil
}

// controlFields names the text fields of a device document (secret, string
// params, labels) that hold control characters. None of the clouds' secrets
// or identifiers has any; a trailing newline from a file or a stray NUL
// would otherwise be stored and signed with, and MQTT forbids NUL in the
// ClientId, Username and Password.
func controlFields(doc oapi.DeviceDocument) []problem.FieldError {
	const reason = "must not contain control characters (a trailing newline?)"
	var fields []problem.FieldError
	if doc.Secret != nil && hasControl(*doc.Secret) {
		fields = append(fields, problem.FieldError{Field: "secret", Reason: reason})
	}
	for _, k := range slices.Sorted(maps.Keys(doc.Params)) {
		if v, ok := doc.Params[k].(string); ok && hasControl(v) {
			fields = append(fields, problem.FieldError{Field: "params." + k, Reason: reason})
		}
	}
	if doc.Labels != nil {
		for _, k := range slices.Sorted(maps.Keys(*doc.Labels)) {
			if hasControl((*doc.Labels)[k]) {
				fields = append(fields, problem.FieldError{Field: "labels." + k, Reason: reason})
			}
		}
	}
	return fields
}

// hasControl reports whether s holds a Unicode control character.
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// precondition turns If-Match / If-None-Match into the store's ifVersion.
func (h handlers) precondition(ctx context.Context, req oapi.PutDeviceRequestObject) (int64, error) {
	if req.Params.IfMatch != nil && req.Params.IfNoneMatch != nil {
		return 0, problem.New(http.StatusBadRequest, "send If-Match or If-None-Match, not both")
	}
	if req.Params.IfNoneMatch != nil {
		return 0, nil
	}
	if req.Params.IfMatch == nil {
		return -1, nil
	}
	m, ok := parseIfMatch(*req.Params.IfMatch)
	if !ok {
		return 0, problem.New(http.StatusBadRequest, "the request is malformed",
			problem.FieldError{Field: "header.If-Match", Reason: "not a list of entity tags"})
	}
	// Compare the whole tag with the current device, then let the store
	// compare-and-set its version: a device deleted and created again in
	// between would have to reach the same version to slip through.
	cur, err := h.s.store.GetDevice(ctx, req.Id)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return 0, problem.New(http.StatusPreconditionFailed, "the device does not exist")
	case err != nil:
		return 0, fmt.Errorf("reading device for If-Match: %w", err)
	case !m.matches(tagOf(cur)):
		return 0, problem.New(http.StatusPreconditionFailed, "the device changed; read it again and retry")
	}
	return cur.Version, nil
}

// DeleteDevice implements oapi.StrictServerInterface.
func (h handlers) DeleteDevice(ctx context.Context, req oapi.DeleteDeviceRequestObject) (oapi.DeleteDeviceResponseObject, error) {
	caller, err := auth.Require(ctx, auth.RoleAdmin, secrets.RoleProvisioner)
	if err != nil {
		return nil, err
	}
	if err := h.s.store.DeleteDevice(ctx, req.Id); err != nil {
		return nil, fmt.Errorf("deleting device: %w", err)
	}
	h.s.audit(ctx, caller, "device.deleted").Str("deviceId", req.Id).Msg("audit")
	return oapi.DeleteDevice204Response{}, nil
}

// IssueCredentials implements oapi.StrictServerInterface.
func (h handlers) IssueCredentials(ctx context.Context, req oapi.IssueCredentialsRequestObject) (oapi.IssueCredentialsResponseObject, error) {
	caller, err := auth.Require(ctx, auth.RoleAdmin, secrets.RoleProvisioner, secrets.RoleDevice)
	if err != nil {
		h.s.metrics.Issued("", metrics.OutcomeDenied)
		return nil, err
	}
	if caller.Role == secrets.RoleDevice && caller.DeviceID != req.Id {
		h.s.metrics.Issued("", metrics.OutcomeDenied)
		return nil, problem.New(http.StatusForbidden, "a device token gets credentials for its own device only")
	}
	d, err := h.s.store.GetDevice(ctx, req.Id)
	if err != nil {
		outcome := metrics.OutcomeError
		if errors.Is(err, secrets.ErrNotFound) {
			outcome = metrics.OutcomeNotFound
		}
		h.s.metrics.Issued("", outcome)
		return nil, fmt.Errorf("reading device: %w", err)
	}
	if caller.Role == secrets.RoleDevice && caller.CreatedAt.Before(d.CreatedAt) {
		// The token was minted for an earlier device of the same ID.
		h.s.metrics.Issued(d.Cloud, metrics.OutcomeDenied)
		return nil, problem.New(http.StatusForbidden, "this token was minted for a device that has since been deleted")
	}
	var ttl time.Duration
	if req.Body != nil && req.Body.TtlSeconds != nil {
		ttl = time.Duration(*req.Body.TtlSeconds) * time.Second
	}
	c, err := signing.Sign(signing.Request{Cloud: d.Cloud, DeviceID: d.ID, Params: d.Params, Secret: d.Secret, Now: h.s.now(), TTL: ttl})
	if err != nil {
		outcome := metrics.OutcomeError
		if signing.IsInvalid(err) {
			outcome = metrics.OutcomeRejected
		}
		h.s.metrics.Issued(d.Cloud, outcome)
		return nil, fmt.Errorf("signing: %w", err)
	}
	h.s.metrics.Issued(d.Cloud, metrics.OutcomeIssued)
	ev := h.s.audit(ctx, caller, "credentials.issued").Str("deviceId", d.ID).Str("cloud", d.Cloud).
		Time("issuedAt", c.IssuedAt).Bool("expiryEnforced", c.ExpiryEnforced)
	if c.ExpiresAt != nil {
		ev = ev.Time("expiresAt", *c.ExpiresAt)
	}
	ev.Msg("audit")
	return credentialsResponse(oapi.IssueCredentials200JSONResponse{
		Body: oapi.Credentials{
			DeviceId: c.DeviceID, Cloud: c.Cloud, ClientId: c.ClientID, Username: c.Username, Password: c.Password,
			Host: c.Host, Port: c.Port, Tls: c.TLS, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt,
			ExpiryEnforced: c.ExpiryEnforced, RefreshAfter: c.RefreshAfter,
		},
		Headers: oapi.IssueCredentials200ResponseHeaders{CacheControl: &noStore},
	}), nil
}

// credentialsResponse is the generated 200 response of issueCredentials,
// written without encoding/json's HTML escaping: Aliyun usernames and Azure
// passwords contain '&', and "\u0026" in the body is valid JSON but wrong
// when copied from curl's output or cut out with sed into an MQTT client.
type credentialsResponse oapi.IssueCredentials200JSONResponse

// VisitIssueCredentialsResponse implements oapi.IssueCredentialsResponseObject.
func (r credentialsResponse) VisitIssueCredentialsResponse(w http.ResponseWriter) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.Body); err != nil {
		return fmt.Errorf("encoding credentials: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Headers.CacheControl != nil {
		w.Header().Set("Cache-Control", *r.Headers.CacheControl)
	}
	w.WriteHeader(http.StatusOK)
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	return nil
}

// CreateDeviceToken implements oapi.StrictServerInterface.
func (h handlers) CreateDeviceToken(ctx context.Context, req oapi.CreateDeviceTokenRequestObject) (oapi.CreateDeviceTokenResponseObject, error) {
	caller, err := auth.Require(ctx, auth.RoleAdmin, secrets.RoleProvisioner)
	if err != nil {
		return nil, err
	}
	if _, err := h.s.store.GetDevice(ctx, req.Id); err != nil {
		return nil, fmt.Errorf("reading device: %w", err)
	}
	m, err := h.mint(ctx, caller, secrets.RoleDevice, req.Id)
	if err != nil {
		return nil, err
	}
	return oapi.CreateDeviceToken201JSONResponse{
		Body:    oapi.TokenCreated{Id: m.Record.ID, Token: m.Text, Role: oapi.TokenCreatedRole(secrets.RoleDevice), DeviceId: &m.Record.DeviceID},
		Headers: oapi.CreateDeviceToken201ResponseHeaders{CacheControl: &noStore},
	}, nil
}

// mint creates, stores and audits a token.
func (h handlers) mint(ctx context.Context, caller auth.Principal, role, deviceID string) (auth.Minted, error) {
	// Token times are wall-clock times, like the store's device times they
	// are compared with (Config.Now only moves the signing clock).
	m, err := auth.NewToken(role, deviceID, time.Now())
	if err != nil {
		return auth.Minted{}, err
	}
	if err := h.s.store.PutToken(ctx, m.Record); err != nil {
		return auth.Minted{}, fmt.Errorf("storing token: %w", err)
	}
	ev := h.s.audit(ctx, caller, "token.created").Str("createdTokenId", m.Record.ID).Str("createdRole", role)
	if deviceID != "" {
		ev = ev.Str("deviceId", deviceID)
	}
	ev.Msg("audit")
	return m, nil
}

// RevokeDeviceToken implements oapi.StrictServerInterface.
func (h handlers) RevokeDeviceToken(ctx context.Context, req oapi.RevokeDeviceTokenRequestObject) (oapi.RevokeDeviceTokenResponseObject, error) {
	caller, err := auth.Require(ctx, auth.RoleAdmin, secrets.RoleProvisioner)
	if err != nil {
		return nil, err
	}
	t, err := h.s.store.GetToken(ctx, req.TokenId)
	if err != nil {
		return nil, fmt.Errorf("reading token: %w", err)
	}
	if t.Role != secrets.RoleDevice || t.DeviceID != req.Id {
		return nil, problem.New(http.StatusNotFound, "this device has no such token")
	}
	if err := h.revoke(ctx, caller, t); err != nil {
		return nil, err
	}
	return oapi.RevokeDeviceToken204Response{}, nil
}

func (h handlers) revoke(ctx context.Context, caller auth.Principal, t secrets.Token) error {
	if err := h.s.store.RevokeToken(ctx, t.ID, time.Now().UTC()); err != nil {
		return fmt.Errorf("revoking token: %w", err)
	}
	ev := h.s.audit(ctx, caller, "token.revoked").Str("revokedTokenId", t.ID).Str("revokedRole", t.Role)
	if t.DeviceID != "" {
		ev = ev.Str("deviceId", t.DeviceID)
	}
	ev.Msg("audit")
	return nil
}

// CreateToken implements oapi.StrictServerInterface.
func (h handlers) CreateToken(ctx context.Context, req oapi.CreateTokenRequestObject) (oapi.CreateTokenResponseObject, error) {
	caller, err := auth.Require(ctx, auth.RoleAdmin)
	if err != nil {
		return nil, err
	}
	if req.Body == nil || req.Body.Role != oapi.TokenRequestRole(secrets.RoleProvisioner) {
		return nil, problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
			problem.FieldError{Field: "role", Reason: "must be provisioner"})
	}
	m, err := h.mint(ctx, caller, secrets.RoleProvisioner, "")
	if err != nil {
		return nil, err
	}
	return oapi.CreateToken201JSONResponse{
		Body:    oapi.TokenCreated{Id: m.Record.ID, Token: m.Text, Role: oapi.TokenCreatedRole(secrets.RoleProvisioner)},
		Headers: oapi.CreateToken201ResponseHeaders{CacheControl: &noStore},
	}, nil
}

// RevokeToken implements oapi.StrictServerInterface.
func (h handlers) RevokeToken(ctx context.Context, req oapi.RevokeTokenRequestObject) (oapi.RevokeTokenResponseObject, error) {
	caller, err := auth.Require(ctx, auth.RoleAdmin)
	if err != nil {
		return nil, err
	}
	t, err := h.s.store.GetToken(ctx, req.TokenId)
	if err != nil {
		return nil, fmt.Errorf("reading token: %w", err)
	}
	if err := h.revoke(ctx, caller, t); err != nil {
		return nil, err
	}
	return oapi.RevokeToken204Response{}, nil
}

// audit starts an audit event: who (token ID and role) did what.
func (s *Server) audit(ctx context.Context, caller auth.Principal, event string) *zerolog.Event {
	return zerolog.Ctx(ctx).Info().Bool("audit", true).Str("event", event).
		Str("tokenId", caller.TokenID).Str("role", caller.Role)
}
