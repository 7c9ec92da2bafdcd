package api

import (
	"context"
	"time"

	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/cloud"
)

// DoctorDevice implements oapi.StrictServerInterface: it diagnoses a
// triple captured from the device. The password sent is passed on to the
// service and never written anywhere (the access log does not log bodies).
func (h handlers) DoctorDevice(ctx context.Context, req oapi.DoctorDeviceRequestObject) (oapi.DoctorDeviceResponseObject, error) {
	// The contract requires the body; the validator refused a request without one.
	b := req.Body
	connack := cloud.NoConnack
	if b.Connack != nil {
		connack = *b.Connack
	}
	var at time.Time
	if b.At != nil {
		at = *b.At
	}
	dg, err := h.s.svc.Doctor(ctx, caller(ctx), req.Id, cloud.Triple{ClientID: b.ClientId, Username: b.Username, Password: b.Password}, connack, at)
	if err != nil {
		return nil, err
	}
	secret := oapi.DiagnosisSecret(dg.Secret)
	out := oapi.Diagnosis{Cloud: dg.Cloud, Match: dg.Match, At: dg.At, Findings: make([]oapi.Finding, len(dg.Findings)),
		Secret: &secret, SecretVersion: &dg.SecretVersion}
	for i, f := range dg.Findings {
		out.Findings[i] = oapi.Finding{Part: oapi.FindingPart(f.Part), Status: oapi.FindingStatus(f.Status), Cause: f.Cause,
			Confidence: oapi.FindingConfidence(f.Confidence)}
	}
	return oapi.DoctorDevice200JSONResponse{Body: out, Headers: oapi.DoctorDevice200ResponseHeaders{CacheControl: &noStore}}, nil
}
