package service

import (
	"errors"
	"slices"
	"strings"

	"github.com/credsign/credsign/cloud"
)

// Code says what kind of failure an *Error is. The API maps each code to
// one HTTP status in one table (api/problem); the CLI to an exit status.
type Code string

// Failure codes of the domain.
const (
	CodeInvalid      Code = "invalid"      // the request or document is not valid (HTTP 422)
	CodeUnauthorized Code = "unauthorized" // no valid credential (401)
	CodeForbidden    Code = "forbidden"    // the caller may not do this (403)
	CodeNotFound     Code = "not_found"    // no such device or token (404)
	CodeConflict     Code = "conflict"     // it already exists (409)
	CodePrecondition Code = "precondition" // the caller's precondition failed (412)
	// CodeCloudRefused: the cloud answered a registration with a refusal (502).
	CodeCloudRefused Code = "cloud_refused"
	// CodeCloudUnavailable: the cloud could not be reached to register a device (503).
	CodeCloudUnavailable Code = "cloud_unavailable"
	// CodeBusy: this replica cannot take the request now; retry (503).
	CodeBusy Code = "busy"
)

// Errors a Registrar wraps (fmt.Errorf("...: %w", ErrCloudRefused)) so that
// the caller learns which of the two happened; the wrapping text is logged,
// only the Detail below reaches the client.
var (
	// ErrCloudRefused means the cloud answered and refused the registration.
	ErrCloudRefused = newError(CodeCloudRefused, "the cloud refused to register the device")
	// ErrCloudUnreachable means the cloud did not answer (network, timeout, 5xx).
	ErrCloudUnreachable = newError(CodeCloudUnavailable, "the cloud could not be reached to register the device; retry later")
	// ErrRegistrationInvalid means the group's registration cannot be
	// performed as it stands (its params or its secret do not fit its
	// kind, or its host is not one this server may call): nothing was
	// sent, the group (or the server's flags) needs fixing.
	ErrRegistrationInvalid = newError(CodeConflict, "the group's registration settings or secret are not valid for its kind, or its host is not one this server may call; fix the group (the server's log names the cause)")
)

// FieldError names one offending field and why it was refused. Reasons
// never quote a secret or a token.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error is a failure of the domain that callers may show as it is: its
// Detail and Fields hold no secret and no token.
type Error struct {
	Code   Code
	Detail string
	Fields []FieldError
	// Reason, on a refused proof of possession, is why (internal/dpop's
	// reasons): the API sends it as the problem's reason member.
	Reason string
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code) + ": " + e.Detail)
	for _, f := range e.Fields {
		b.WriteString("; " + f.Field + ": " + f.Reason)
	}
	return b.String()
}

// DetailInvalid is the one detail of every CodeInvalid error; the fields
// say what is wrong.
const DetailInvalid = "the request body is invalid"

func newError(code Code, detail string, fields ...FieldError) *Error {
	return &Error{Code: code, Detail: detail, Fields: fields}
}

// invalid returns the CodeInvalid error naming fields, sorted by field.
func invalid(fields ...FieldError) *Error {
	slices.SortStableFunc(fields, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	return newError(CodeInvalid, DetailInvalid, fields...)
}

// InvalidFields returns every field that err (possibly joined or wrapped)
// says is invalid: the cloud core's *cloud.InvalidError values and
// the fields of a CodeInvalid *Error.
func InvalidFields(err error) []FieldError {
	var out []FieldError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
			return
		case *cloud.InvalidError:
			out = append(out, FieldError{Field: apiField(e.Field), Reason: e.Reason})
			return
		case *Error:
			if e.Code == CodeInvalid {
				out = append(out, e.Fields...)
			}
			return
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
			return
		}
		walk(errors.Unwrap(err))
	}
	walk(err)
	return out
}

// apiField turns a signing field name into the name the API uses.
func apiField(f string) string {
	if f == "ttl" {
		return "ttlSeconds"
	}
	return f
}
