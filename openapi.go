// Package credsign holds the service's API contract, openapi.yaml, so that
// the server can embed it, validate requests against it and serve it.
package credsign

import _ "embed"

// OpenAPI is the text of openapi.yaml, the API contract.
//
//go:embed openapi.yaml
var OpenAPI []byte
