// Package apiclient is the client of credsign's API that the operator's
// commands use (credsign import, devices, groups, tokens,
// enrolment-tokens, keys) and the boot-storm harness, generated from
// openapi.yaml by oapi-codegen (types and client only). Do not edit
// client.gen.go; run go generate ./internal/apiclient after changing the
// contract or client.yaml.
package apiclient

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 --config client.yaml ../../openapi.yaml
