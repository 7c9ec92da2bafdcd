// Package importclient is the client of credsign's bulk import
// (POST /v1/imports), generated from openapi.yaml by oapi-codegen (types
// and client only). Do not edit client.gen.go; run
// go generate ./internal/importclient after changing the contract.
package importclient

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 --config client.yaml ../../openapi.yaml
