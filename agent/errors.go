package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ErrRejected is wrapped by errors reporting that the broker refused the
// CONNECT (CONNACK 4 bad username or password, 5 not authorized, 2
// identifier rejected).
var ErrRejected = errors.New("broker rejected the credentials")

// ErrBrokerCertificate is wrapped by errors reporting that the broker's TLS
// certificate did not verify (an unknown authority, a name that is not the
// broker's host, a certificate expired or not yet valid).
var ErrBrokerCertificate = errors.New("the broker's TLS certificate was not accepted")

// ErrNoToken is wrapped by errors reporting that the device token file is
// missing, unreadable or empty.
var ErrNoToken = errors.New("no device token")

// FetchError is an error answer (RFC 9457 problem) from credsign.
type FetchError struct {
	Status int
	Title  string
	Detail string
	// Errors are the problem's errors[]: which field was refused and why
	// (for a 422, such as ttlSeconds "… longer than huawei allows …").
	Errors []FieldError
	// RetryAfter is the server's Retry-After (429, 503), zero when absent.
	RetryAfter time.Duration
	// Reason is why a DPoP proof was refused (401), "" otherwise.
	Reason string
}

// FieldError is one entry of a problem's errors[].
type FieldError struct {
	Field  string
	Reason string
}

func (e *FetchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "credsign answered %d", e.Status)
	if x := Explain(e.Reason); x != "" {
		// One line a device can log: what was refused and what to check.
		b.WriteString(": " + x)
		return b.String()
	}
	if e.Title != "" {
		b.WriteString(" " + e.Title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if len(e.Errors) > 0 {
		reasons := make([]string, len(e.Errors))
		for i, f := range e.Errors {
			reasons[i] = f.Reason
			if f.Field != "" {
				reasons[i] = f.Field + ": " + f.Reason
			}
		}
		b.WriteString(" (" + strings.Join(reasons, "; ") + ")")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Permanent reports whether err will not clear by waiting: credsign refused
// the request for good (a 4xx other than 408 Request Timeout and 429 Too
// Many Requests), the device token file is missing or empty, the broker
// refused the credentials, or a TLS certificate (the broker's or
// credsign's) did not verify. One-shot tools stop on these; a device in the
// field retries them with back-off (a token may be rotated in place, a
// device fixed in credsign, a certificate renewed).
func Permanent(err error) bool {
	var fe *FetchError
	if errors.As(err, &fe) {
		return fe.Status >= 400 && fe.Status < 500 &&
			fe.Status != http.StatusRequestTimeout && fe.Status != http.StatusTooManyRequests
	}
	return errors.Is(err, ErrNoToken) || errors.Is(err, ErrRejected) || errors.Is(err, ErrBrokerCertificate) || certificateError(err)
}

// certificateError reports whether err is a failure to verify a peer's
// certificate: crypto/tls wraps every one in a CertificateVerificationError;
// the x509 errors are also matched for a TLS stack that returns them bare.
func certificateError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
	)
	return errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie)
}
