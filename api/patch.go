package api

import (
	"context"

	"github.com/credsign/credsign/api/oapi"
)

// PatchDevice implements oapi.StrictServerInterface: a JSON Merge Patch of
// the device document, the secret kept as stored.
func (h handlers) PatchDevice(ctx context.Context, req oapi.PatchDeviceRequestObject) (oapi.PatchDeviceResponseObject, error) {
	cond, err := precondition(req.Params.IfMatch, false)
	if err != nil {
		return nil, err
	}
	// The contract requires the body; the validator refused a request without one.
	d, err := h.s.svc.PatchDevice(ctx, caller(ctx), req.Id, *req.Body, cond)
	if err != nil {
		return nil, err
	}
	tag := etag(d)
	return oapi.PatchDevice200JSONResponse{Body: apiDevice(d), Headers: oapi.PatchDevice200ResponseHeaders{ETag: &tag}}, nil
}

// RotateDeviceSecret implements oapi.StrictServerInterface: the device's
// secret replaced, nothing else.
func (h handlers) RotateDeviceSecret(ctx context.Context, req oapi.RotateDeviceSecretRequestObject) (oapi.RotateDeviceSecretResponseObject, error) {
	cond, err := precondition(req.Params.IfMatch, false)
	if err != nil {
		return nil, err
	}
	secret := ""
	if req.Body.Secret != nil { // required by the contract; the validator refused a body without it
		secret = *req.Body.Secret
	}
	d, err := h.s.svc.RotateSecret(ctx, caller(ctx), req.Id, secret, cond)
	if err != nil {
		return nil, err
	}
	tag := etag(d)
	return oapi.RotateDeviceSecret200JSONResponse{Body: apiDevice(d), Headers: oapi.RotateDeviceSecret200ResponseHeaders{ETag: &tag}}, nil
}

// PatchGroup implements oapi.StrictServerInterface: a JSON Merge Patch of
// the group document, the secret kept as stored.
func (h handlers) PatchGroup(ctx context.Context, req oapi.PatchGroupRequestObject) (oapi.PatchGroupResponseObject, error) {
	g, err := h.s.svc.PatchGroup(ctx, caller(ctx), req.GroupId, *req.Body)
	if err != nil {
		return nil, err
	}
	return oapi.PatchGroup200JSONResponse(apiGroup(g)), nil
}
