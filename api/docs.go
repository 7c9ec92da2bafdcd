package api

import (
	"bytes"
	"context"

	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/internal/apidocs"
)

// GetDocs implements oapi.StrictServerInterface: the API reference, the
// page generated from openapi.yaml (internal/apidocs), with the policy that
// lets it run its own scripts and load nothing.
func (h handlers) GetDocs(context.Context, oapi.GetDocsRequestObject) (oapi.GetDocsResponseObject, error) {
	csp := apidocs.CSP
	return oapi.GetDocs200TexthtmlResponse{
		Body:          bytes.NewReader(apidocs.HTML),
		ContentLength: int64(len(apidocs.HTML)),
		Headers:       oapi.GetDocs200ResponseHeaders{ContentSecurityPolicy: &csp},
	}, nil
}
