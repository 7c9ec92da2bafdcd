// Package oapi is the code generated from openapi.yaml: the request and
// response types, the chi router and the strict server interface that the
// hand-written handlers in package api implement. Do not edit oapi.gen.go.
package oapi

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 --config config.yaml ../../openapi.yaml
