// Package client is the credsign HTTP client generated from openapi.yaml by
// oapi-codegen (types and client only). Do not edit client.gen.go; run
// go generate ./agent/client after changing the contract.
package client

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 --config client.yaml ../../openapi.yaml
