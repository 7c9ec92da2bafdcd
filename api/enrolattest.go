package api

import (
	"context"

	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/service/tpmattest"
)

// EnrolAttest implements oapi.StrictServerInterface: the first call of TPM
// attestation at enrolment (service.EnrolAttest).
func (h handlers) EnrolAttest(ctx context.Context, req oapi.EnrolAttestRequestObject) (oapi.EnrolAttestResponseObject, error) {
	var r tpmattest.Request
	id := ""
	if req.Body != nil {
		id, r.EKCert, r.AKPublic = req.Body.DeviceId, req.Body.Ek.Cert, req.Body.Ak.Public
	}
	c, err := h.s.svc.EnrolAttest(ctx, caller(ctx), id, r)
	if err != nil {
		return nil, err
	}
	out := oapi.EnrolAttestChallenge{ChallengeId: c.ID, ExpiresAt: c.ExpiresAt.UTC()}
	out.Credential.CredentialBlob, out.Credential.Secret = c.CredentialBlob, c.Secret
	return oapi.EnrolAttest200JSONResponse{Body: out, Headers: oapi.EnrolAttest200ResponseHeaders{CacheControl: &noStore}}, nil
}
