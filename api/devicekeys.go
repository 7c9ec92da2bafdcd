package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/api/problem"
	"github.com/credsign/credsign/service"
)

// optionalTrue is a pointer to true, or nil for false (left out of JSON).
func optionalTrue(b bool) *bool {
	if !b {
		return nil
	}
	return &b
}

func apiDeviceKey(k service.DeviceKey) (oapi.DeviceKey, error) {
	out := oapi.DeviceKey{Kid: k.ID, CreatedAt: k.CreatedAt.UTC(), Attestation: oapi.DeviceKeyAttestation(k.Attestation)}
	if out.Attestation == "" {
		out.Attestation = service.AttestationNone
	}
	if err := json.Unmarshal(k.JWK, &out.Jwk); err != nil {
		return oapi.DeviceKey{}, errors.New("a stored device key does not decode")
	}
	if k.Name != "" {
		out.Name = &k.Name
	}
	return out, nil
}

// ListDeviceKeys implements oapi.StrictServerInterface.
func (h handlers) ListDeviceKeys(ctx context.Context, req oapi.ListDeviceKeysRequestObject) (oapi.ListDeviceKeysResponseObject, error) {
	keys, err := h.s.svc.ListDeviceKeys(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	out := oapi.ListDeviceKeys200JSONResponse{Keys: make([]oapi.DeviceKey, 0, len(keys))}
	for _, k := range keys {
		ak, err := apiDeviceKey(k)
		if err != nil {
			return nil, err
		}
		out.Keys = append(out.Keys, ak)
	}
	return out, nil
}

// AddDeviceKey implements oapi.StrictServerInterface.
func (h handlers) AddDeviceKey(ctx context.Context, req oapi.AddDeviceKeyRequestObject) (oapi.AddDeviceKeyResponseObject, error) {
	if req.Body == nil {
		return nil, problem.New(http.StatusUnprocessableEntity, service.DetailInvalid, problem.FieldError{Field: "jwk", Reason: "required"})
	}
	jwk, err := json.Marshal(req.Body.Jwk)
	if err != nil {
		return nil, err
	}
	name := ""
	if req.Body.Name != nil {
		name = *req.Body.Name
		if strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return nil, problem.New(http.StatusUnprocessableEntity, service.DetailInvalid, problem.FieldError{Field: "name", Reason: "must not contain control characters"})
		}
	}
	k, err := h.s.svc.AddDeviceKey(ctx, caller(ctx), req.Id, jwk, name)
	if err != nil {
		return nil, err
	}
	ak, err := apiDeviceKey(k)
	if err != nil {
		return nil, err
	}
	return oapi.AddDeviceKey201JSONResponse(ak), nil
}

// RemoveDeviceKey implements oapi.StrictServerInterface.
func (h handlers) RemoveDeviceKey(ctx context.Context, req oapi.RemoveDeviceKeyRequestObject) (oapi.RemoveDeviceKeyResponseObject, error) {
	if err := h.s.svc.DeleteDeviceKey(ctx, caller(ctx), req.Id, req.Kid); err != nil {
		return nil, err
	}
	return oapi.RemoveDeviceKey204Response{}, nil
}
