package api

import (
	"context"
	"maps"
	"time"

	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
	"github.com/credsign/credsign/service/tpmattest"
)

// apiGroup is the API's form of a stored group (never its secret).
func apiGroup(g secrets.Group) oapi.Group {
	labels := oapi.Labels{}
	maps.Copy(labels, g.Labels)
	params := map[string]oapi.ParamValue{}
	maps.Copy(params, g.Params)
	out := oapi.Group{
		Id:         g.ID,
		Cloud:      g.Cloud,
		Params:     params,
		Labels:     labels,
		Version:    g.Version,
		CreatedAt:  g.CreatedAt.UTC(),
		UpdatedAt:  g.UpdatedAt.UTC(),
		RequireKey: optionalTrue(g.RequireKey),
	}
	if g.RequireAttestation != "" {
		ra := oapi.RequireAttestation(g.RequireAttestation)
		out.RequireAttestation = &ra
	}
	if r := g.Registration; r != nil {
		out.Registration = &oapi.GroupRegistration{Kind: oapi.GroupRegistrationKind(r.Kind)}
		if len(r.Params) > 0 {
			p := maps.Clone(r.Params)
			out.Registration.Params = &p
		}
	}
	return out
}

// PutGroup implements oapi.StrictServerInterface.
func (h handlers) PutGroup(ctx context.Context, req oapi.PutGroupRequestObject) (oapi.PutGroupResponseObject, error) {
	var doc service.GroupDocument
	if b := req.Body; b != nil {
		doc = service.GroupDocument{Cloud: b.Cloud, Params: b.Params, RequireKey: b.RequireKey != nil && *b.RequireKey}
		if b.Secret != nil {
			doc.Secret = *b.Secret
		}
		if b.Labels != nil {
			doc.Labels = *b.Labels
		}
		if b.RequireAttestation != nil {
			doc.RequireAttestation = string(*b.RequireAttestation)
		}
		if b.Registration != nil {
			doc.Registration = &secrets.Registration{Kind: string(b.Registration.Kind)}
			if b.Registration.Params != nil {
				doc.Registration.Params = *b.Registration.Params
			}
		}
	}
	g, created, err := h.s.svc.PutGroup(ctx, caller(ctx), req.GroupId, doc)
	if err != nil {
		return nil, err
	}
	if created {
		return oapi.PutGroup201JSONResponse(apiGroup(g)), nil
	}
	return oapi.PutGroup200JSONResponse(apiGroup(g)), nil
}

// GetGroup implements oapi.StrictServerInterface.
func (h handlers) GetGroup(ctx context.Context, req oapi.GetGroupRequestObject) (oapi.GetGroupResponseObject, error) {
	g, err := h.s.svc.GetGroup(ctx, req.GroupId)
	if err != nil {
		return nil, err
	}
	return oapi.GetGroup200JSONResponse(apiGroup(g)), nil
}

// DeleteGroup implements oapi.StrictServerInterface.
func (h handlers) DeleteGroup(ctx context.Context, req oapi.DeleteGroupRequestObject) (oapi.DeleteGroupResponseObject, error) {
	if err := h.s.svc.DeleteGroup(ctx, caller(ctx), req.GroupId); err != nil {
		return nil, err
	}
	return oapi.DeleteGroup204Response{}, nil
}

// ListGroups implements oapi.StrictServerInterface.
func (h handlers) ListGroups(ctx context.Context, req oapi.ListGroupsRequestObject) (oapi.ListGroupsResponseObject, error) {
	after, limit := page(req.Params.After, req.Params.Limit)
	found, next, err := h.s.svc.ListGroups(ctx, caller(ctx), after, limit)
	if err != nil {
		return nil, err
	}
	out := oapi.ListGroups200JSONResponse{Groups: make([]oapi.Group, len(found))}
	for i, g := range found {
		out.Groups[i] = apiGroup(g)
	}
	out.Next = optional(next)
	return out, nil
}

// apiEnrolmentToken is the API's form of an enrolment token (never its text).
func apiEnrolmentToken(t service.EnrolmentToken) oapi.EnrolmentToken {
	out := oapi.EnrolmentToken{
		Id: t.ID, Group: t.Group, MaxUses: t.MaxUses, Uses: t.Uses, Failures: t.Failures,
		ExpiresAt: t.ExpiresAt.UTC(), CreatedAt: t.CreatedAt.UTC(), IdPattern: optional(t.IDPattern), Name: optional(t.Name),
	}
	if t.RevokedAt != nil {
		at := t.RevokedAt.UTC()
		out.RevokedAt = &at
	}
	return out
}

// CreateEnrolmentToken implements oapi.StrictServerInterface.
func (h handlers) CreateEnrolmentToken(ctx context.Context, req oapi.CreateEnrolmentTokenRequestObject) (oapi.CreateEnrolmentTokenResponseObject, error) {
	var r service.EnrolmentTokenRequest
	if b := req.Body; b != nil {
		r.MaxUses = b.MaxUses
		r.ExpiresAt = b.ExpiresAt
		if b.TtlSeconds != nil {
			r.TTL = time.Duration(*b.TtlSeconds) * time.Second
		}
		if b.IdPattern != nil {
			r.IDPattern = *b.IdPattern
		}
		if b.Name != nil {
			r.Name = *b.Name
		}
	}
	t, text, err := h.s.svc.CreateEnrolmentToken(ctx, caller(ctx), req.GroupId, r)
	if err != nil {
		return nil, err
	}
	pub := apiEnrolmentToken(t)
	return oapi.CreateEnrolmentToken201JSONResponse{
		Body: oapi.EnrolmentTokenCreated{
			Id: pub.Id, Group: pub.Group, MaxUses: pub.MaxUses, Uses: pub.Uses, Failures: pub.Failures, ExpiresAt: pub.ExpiresAt,
			CreatedAt: pub.CreatedAt, IdPattern: pub.IdPattern, RevokedAt: pub.RevokedAt, Name: pub.Name, Token: text,
		},
		Headers: oapi.CreateEnrolmentToken201ResponseHeaders{CacheControl: &noStore},
	}, nil
}

// GetEnrolmentToken implements oapi.StrictServerInterface.
func (h handlers) GetEnrolmentToken(ctx context.Context, req oapi.GetEnrolmentTokenRequestObject) (oapi.GetEnrolmentTokenResponseObject, error) {
	t, err := h.s.svc.GetEnrolmentToken(ctx, req.GroupId, req.TokenId)
	if err != nil {
		return nil, err
	}
	return oapi.GetEnrolmentToken200JSONResponse(apiEnrolmentToken(t)), nil
}

// RevokeEnrolmentToken implements oapi.StrictServerInterface.
func (h handlers) RevokeEnrolmentToken(ctx context.Context, req oapi.RevokeEnrolmentTokenRequestObject) (oapi.RevokeEnrolmentTokenResponseObject, error) {
	if err := h.s.svc.RevokeEnrolmentToken(ctx, caller(ctx), req.GroupId, req.TokenId); err != nil {
		return nil, err
	}
	return oapi.RevokeEnrolmentToken204Response{}, nil
}

// Enrol implements oapi.StrictServerInterface.
func (h handlers) Enrol(ctx context.Context, req oapi.EnrolRequestObject) (oapi.EnrolResponseObject, error) {
	id := ""
	var att *tpmattest.Attestation
	if b := req.Body; b != nil {
		id = b.DeviceId
		if a := b.Attestation; a != nil {
			att = &tpmattest.Attestation{ChallengeID: a.ChallengeId, ActivatedSecret: a.ActivatedSecret,
				KeyPublic: a.KeyCertify.Public, Attest: a.KeyCertify.Attest, Signature: a.KeyCertify.Signature}
		}
	}
	e, err := h.s.svc.Enrol(ctx, caller(ctx), id, att)
	if err != nil {
		return nil, err
	}
	body := oapi.Enrolled{DeviceId: e.Device.ID, Group: e.Device.Group}
	if e.KeyID != "" {
		body.KeyId = &e.KeyID
	} else {
		body.TokenId, body.Token = &e.Token.Record.ID, &e.Token.Text
	}
	return oapi.Enrol201JSONResponse{Body: body, Headers: oapi.Enrol201ResponseHeaders{CacheControl: &noStore}}, nil
}
