package api

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
)

// Token operations: minting, listing, rotating and revoking device and
// provisioner tokens, and listing enrolment tokens (the rest of those is in
// groups.go).

// tokenCreated is the API's answer to a mint or a rotation: the text,
// shown once, and the record.
func tokenCreated(m service.Minted) oapi.TokenCreated {
	r := m.Record
	out := oapi.TokenCreated{Id: r.ID, Token: m.Text, Role: oapi.TokenCreatedRole(r.Role), Name: optional(r.Name)}
	created := r.CreatedAt.UTC()
	out.CreatedAt = &created
	if r.DeviceID != "" {
		out.DeviceId = &r.DeviceID
	}
	if r.ExpiresAt != nil {
		at := r.ExpiresAt.UTC()
		out.ExpiresAt = &at
	}
	out.Scope = apiScope(r.Scope)
	return out
}

// apiScope is the API's form of a token's scope (nil: unscoped).
func apiScope(sc *secrets.Scope) *oapi.TokenScope {
	if sc == nil {
		return nil
	}
	out := &oapi.TokenScope{}
	if len(sc.Groups) > 0 {
		groups := slices.Clone(sc.Groups)
		out.Groups = &groups
	}
	if len(sc.Labels) > 0 {
		labels := maps.Clone(sc.Labels)
		out.Labels = &labels
	}
	return out
}

// utc returns a copy of *t in UTC, nil for nil.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// apiToken is the API's form of a token record (never its text or hash).
func apiToken(t service.TokenInfo) oapi.Token {
	out := oapi.Token{Id: t.ID, Role: oapi.TokenRole(t.Role), Name: optional(t.Name), CreatedAt: t.CreatedAt.UTC(),
		ExpiresAt: utc(t.ExpiresAt), RevokedAt: utc(t.RevokedAt), RotatedAt: utc(t.ReplacedAt),
		ReplacedBy: optional(t.ReplacedBy), State: oapi.TokenState(t.State)}
	if t.DeviceID != "" {
		out.DeviceId = &t.DeviceID
	}
	if t.LifetimeSeconds > 0 {
		out.LifetimeSeconds = &t.LifetimeSeconds
	}
	out.Scope = apiScope(t.Scope)
	return out
}

// tokenList is the API's form of a page of tokens.
func tokenList(p service.TokenPage) oapi.TokenList {
	out := oapi.TokenList{Tokens: make([]oapi.Token, 0, len(p.Tokens)), Next: optional(p.Next)}
	for _, t := range p.Tokens {
		out.Tokens = append(out.Tokens, apiToken(t))
	}
	return out
}

// page returns the cursor and limit of a listing's parameters.
func page(after *string, limit *int) (string, int) {
	return deref(after), deref(limit)
}

// deref returns *p, or the zero value for a nil p (an optional parameter
// or member left out).
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// lifetime converts an optional ttlSeconds.
func lifetime(ttl *int64) time.Duration {
	if ttl == nil {
		return 0
	}
	return time.Duration(*ttl) * time.Second
}

// CreateDeviceToken implements oapi.StrictServerInterface.
func (h handlers) CreateDeviceToken(ctx context.Context, req oapi.CreateDeviceTokenRequestObject) (oapi.CreateDeviceTokenResponseObject, error) {
	r := service.TokenRequest{Role: secrets.RoleDevice, DeviceID: req.Id}
	if b := req.Body; b != nil {
		r.TTL = lifetime(b.TtlSeconds)
		if b.Name != nil {
			r.Name = *b.Name
		}
	}
	m, err := h.s.svc.MintToken(ctx, caller(ctx), r)
	if err != nil {
		return nil, err
	}
	return oapi.CreateDeviceToken201JSONResponse{
		Body:    tokenCreated(m),
		Headers: oapi.CreateDeviceToken201ResponseHeaders{CacheControl: &noStore},
	}, nil
}

// ListDeviceTokens implements oapi.StrictServerInterface.
func (h handlers) ListDeviceTokens(ctx context.Context, req oapi.ListDeviceTokensRequestObject) (oapi.ListDeviceTokensResponseObject, error) {
	after, limit := page(req.Params.After, req.Params.Limit)
	p, err := h.s.svc.ListTokens(ctx, secrets.RoleDevice, req.Id, after, limit)
	if err != nil {
		return nil, err
	}
	return oapi.ListDeviceTokens200JSONResponse(tokenList(p)), nil
}

// RotateDeviceToken implements oapi.StrictServerInterface.
func (h handlers) RotateDeviceToken(ctx context.Context, req oapi.RotateDeviceTokenRequestObject) (oapi.RotateDeviceTokenResponseObject, error) {
	m, err := h.s.svc.RotateDeviceToken(ctx, caller(ctx), req.Id)
	if err != nil {
		return nil, err
	}
	return oapi.RotateDeviceToken201JSONResponse{
		Body:    tokenCreated(m),
		Headers: oapi.RotateDeviceToken201ResponseHeaders{CacheControl: &noStore},
	}, nil
}

// RevokeDeviceToken implements oapi.StrictServerInterface.
func (h handlers) RevokeDeviceToken(ctx context.Context, req oapi.RevokeDeviceTokenRequestObject) (oapi.RevokeDeviceTokenResponseObject, error) {
	if err := h.s.svc.RevokeDeviceToken(ctx, caller(ctx), req.Id, req.TokenId); err != nil {
		return nil, err
	}
	return oapi.RevokeDeviceToken204Response{}, nil
}

// CreateToken implements oapi.StrictServerInterface. The contract allows
// only the provisioner role in the body.
func (h handlers) CreateToken(ctx context.Context, req oapi.CreateTokenRequestObject) (oapi.CreateTokenResponseObject, error) {
	r := service.TokenRequest{Role: secrets.RoleProvisioner}
	if b := req.Body; b != nil {
		r.TTL = lifetime(b.TtlSeconds)
		if b.Name != nil {
			r.Name = *b.Name
		}
		if b.Scope != nil {
			r.Scope = &secrets.Scope{}
			if b.Scope.Groups != nil {
				r.Scope.Groups = *b.Scope.Groups
			}
			if b.Scope.Labels != nil {
				r.Scope.Labels = *b.Scope.Labels
			}
		}
	}
	m, err := h.s.svc.MintToken(ctx, caller(ctx), r)
	if err != nil {
		return nil, err
	}
	return oapi.CreateToken201JSONResponse{
		Body:    tokenCreated(m),
		Headers: oapi.CreateToken201ResponseHeaders{CacheControl: &noStore},
	}, nil
}

// ListTokens implements oapi.StrictServerInterface.
func (h handlers) ListTokens(ctx context.Context, req oapi.ListTokensRequestObject) (oapi.ListTokensResponseObject, error) {
	after, limit := page(req.Params.After, req.Params.Limit)
	p, err := h.s.svc.ListTokens(ctx, secrets.RoleProvisioner, "", after, limit)
	if err != nil {
		return nil, err
	}
	return oapi.ListTokens200JSONResponse(tokenList(p)), nil
}

// RevokeToken implements oapi.StrictServerInterface.
func (h handlers) RevokeToken(ctx context.Context, req oapi.RevokeTokenRequestObject) (oapi.RevokeTokenResponseObject, error) {
	if err := h.s.svc.RevokeToken(ctx, caller(ctx), req.TokenId); err != nil {
		return nil, err
	}
	return oapi.RevokeToken204Response{}, nil
}

// ListEnrolmentTokens implements oapi.StrictServerInterface.
func (h handlers) ListEnrolmentTokens(ctx context.Context, req oapi.ListEnrolmentTokensRequestObject) (oapi.ListEnrolmentTokensResponseObject, error) {
	after, limit := page(req.Params.After, req.Params.Limit)
	ts, next, err := h.s.svc.ListEnrolmentTokens(ctx, req.GroupId, after, limit)
	if err != nil {
		return nil, err
	}
	out := oapi.EnrolmentTokenList{EnrolmentTokens: make([]oapi.EnrolmentToken, 0, len(ts)), Next: optional(next)}
	for _, t := range ts {
		out.EnrolmentTokens = append(out.EnrolmentTokens, apiEnrolmentToken(t))
	}
	return oapi.ListEnrolmentTokens200JSONResponse(out), nil
}
