// Package problem writes every failure of the API as an RFC 9457
// application/problem+json document. One table maps the errors of the
// domain (store sentinels, signing validation errors, API errors) to HTTP
// statuses; anything the table does not know is an internal error whose
// text never reaches the client.
package problem

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
)

// ContentType is the media type of every problem document.
const ContentType = "application/problem+json"

// UnavailableRetryAfter is the Retry-After (seconds) sent with a 503 caused
// by an unreachable store.
const UnavailableRetryAfter = 5

// FieldError names one offending field and why it was refused.
type FieldError = service.FieldError

// statusOf maps each code of the domain to its HTTP status.
var statusOf = map[service.Code]int{
	service.CodeInvalid:      http.StatusUnprocessableEntity,
	service.CodeUnauthorized: http.StatusUnauthorized,
	service.CodeForbidden:    http.StatusForbidden,
	service.CodeNotFound:     http.StatusNotFound,
	service.CodeConflict:     http.StatusConflict,
	service.CodePrecondition: http.StatusPreconditionFailed,
	// A registration with the cloud: refused (the gateway's upstream said
	// no) or unreachable (retry later).
	service.CodeCloudRefused:     http.StatusBadGateway,
	service.CodeCloudUnavailable: http.StatusServiceUnavailable,
	service.CodeBusy:             http.StatusServiceUnavailable,
}

// Document is the JSON body of a problem response.
type Document struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	// Reason says why a DPoP proof was refused (401 only).
	Reason string       `json:"reason,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
}

// Error is an error that carries the HTTP status and the client-safe text
// of its response. Its Detail and Fields are shown to the client as they
// are, so they must never hold a secret or a token.
type Error struct {
	Status int
	Detail string
	Fields []FieldError
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int
	// Header holds extra response headers (WWW-Authenticate).
	Header http.Header
	// Reason is the reason member (a refused DPoP proof).
	Reason string
}

// Error implements error.
func (e *Error) Error() string {
	return strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + ": " + e.Detail
}

// New returns an *Error with the given status and detail.
func New(status int, detail string, fields ...FieldError) *Error {
	return &Error{Status: status, Detail: detail, Fields: fields}
}

// Classify maps err to the problem the client sees. The second result is
// false when err is internal (status 500, detail "internal error"); callers
// log such errors, since the client learns nothing about them.
func Classify(err error) (*Error, bool) {
	var (
		pe  *Error
		se  *service.Error
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &pe):
		return pe, true
	case errors.As(err, &se) && se.Code != service.CodeInvalid:
		e := New(statusOf[se.Code], se.Detail, se.Fields...)
		switch {
		case e.Status == http.StatusUnauthorized && se.Reason != "":
			e.Reason = se.Reason
			code := "invalid_dpop_proof"
			if se.Reason == "use-nonce" {
				code = "use_dpop_nonce"
			}
			e.Header = http.Header{"Www-Authenticate": {`DPoP algs="ES256 EdDSA", error="` + code + `", error_description="` + se.Reason + `"`}}
		case e.Status == http.StatusUnauthorized:
			e.Header = http.Header{"Www-Authenticate": {`Bearer realm="credsign"`, `DPoP algs="ES256 EdDSA"`}}
		}
		if se.Code == service.CodeCloudUnavailable || se.Code == service.CodeBusy {
			e.RetryAfter = UnavailableRetryAfter
		}
		return e, true
	case errors.As(err, &mbe):
		return New(http.StatusRequestEntityTooLarge,
			"the request body is larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes"), true
	case errors.Is(err, secrets.ErrNotFound):
		return New(http.StatusNotFound, "not found"), true
	case errors.Is(err, secrets.ErrConflict):
		return New(http.StatusConflict, "the resource was changed or already exists"), true
	case errors.Is(err, secrets.ErrInvalid):
		return New(http.StatusBadRequest, "the request names an invalid identifier"), true
	case errors.Is(err, secrets.ErrUnavailable):
		e := New(http.StatusServiceUnavailable, "the secret store is unavailable; retry later")
		e.RetryAfter = UnavailableRetryAfter
		return e, true
	}
	if fields := service.InvalidFields(err); len(fields) > 0 {
		return New(http.StatusUnprocessableEntity, service.DetailInvalid, fields...), true
	}
	return New(http.StatusInternalServerError, "internal error"), false
}

// Write sends the problem for err. requestID, when set, goes into the body.
func Write(w http.ResponseWriter, err error, requestID string) {
	pe, _ := Classify(err)
	h := w.Header()
	for k, vs := range pe.Header {
		h[k] = vs
	}
	if pe.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(pe.RetryAfter))
	}
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(pe.Status)
	_ = json.NewEncoder(w).Encode(Document{
		Type:      "about:blank",
		Title:     http.StatusText(pe.Status),
		Status:    pe.Status,
		Detail:    pe.Detail,
		RequestID: requestID,
		Reason:    pe.Reason,
		Errors:    pe.Fields,
	})
}
