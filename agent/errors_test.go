package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/credsign/credsign/agent/tpmkey"
)

func TestPermanent(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&FetchError{Status: 401}, true},
		{&FetchError{Status: 403}, true},
		{&FetchError{Status: 404}, true},
		{&FetchError{Status: 400}, true},
		{&FetchError{Status: 415}, true},
		{fmt.Errorf("fetch: %w", &FetchError{Status: 422}), true},
		{&FetchError{Status: 408}, false},
		{&FetchError{Status: 429}, false},
		{&FetchError{Status: 500}, false},
		{&FetchError{Status: 503}, false},
		{fmt.Errorf("%w: 127.0.0.1:1883 refused CONNECT", ErrRejected), true},
		{fmt.Errorf("%w: token file x is empty", ErrNoToken), true},
		{fmt.Errorf("%w: connect to ssl://127.0.0.1:8883: x", ErrBrokerCertificate), true},
		{fmt.Errorf("fetch: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), true},
		{fmt.Errorf("network Error : %w", x509.HostnameError{Host: "127.0.0.1"}), true},
		{x509.CertificateInvalidError{Reason: x509.Expired}, true},
		{errors.New("tls: handshake failure"), false},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false},
		{context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		if got := Permanent(tt.err); got != tt.want {
			t.Errorf("Permanent(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}

func TestFetchErrorNamesEveryReason(t *testing.T) {
	e := &FetchError{Status: 422, Title: "Unprocessable Entity", Detail: "the request body is invalid",
		Errors: []FieldError{{"ttlSeconds", "7200 seconds is longer than huawei allows (at most 3600)"}, {"", "and another"}}}
	want := "credsign answered 422 Unprocessable Entity: the request body is invalid (ttlSeconds: 7200 seconds is longer than huawei allows (at most 3600); and another)"
	if e.Error() != want {
		t.Fatalf("got  %q\nwant %q", e.Error(), want)
	}
}

func TestTokenFileErrorsArePermanent(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(dir, "missing"), empty} {
		src, err := NewHTTPSource(HTTPSourceConfig{Server: "http://127.0.0.1:1", DeviceID: "lamp", TokenFile: file})
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Fetch(context.Background())
		if !errors.Is(err, ErrNoToken) || !Permanent(err) {
			t.Fatalf("token file %s: %v, want a permanent ErrNoToken", file, err)
		}
	}
}

// TestAttestRetryable: an attestation whose challenge call got no answer,
// 408, 429 or 5xx is tried again; a refusal, a certificate the agent does
// not trust and a failure of the TPM itself end the enrolment.
func TestAttestRetryable(t *testing.T) {
	call := func(status int, err error) error {
		return fmt.Errorf("attest: %w", &tpmkey.CallError{Status: status, Err: err})
	}
	refused := errors.New("tpm attestation: refused")
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"no answer", call(0, errors.New("connection refused")), true},
		{"untrusted server certificate", call(0, &tls.CertificateVerificationError{Err: errors.New("unknown authority")}), false},
		{"408", call(http.StatusRequestTimeout, refused), true},
		{"429", call(http.StatusTooManyRequests, refused), true},
		{"500", call(http.StatusInternalServerError, refused), true},
		{"503", call(http.StatusServiceUnavailable, refused), true},
		{"400", call(http.StatusBadRequest, refused), false},
		{"401", call(http.StatusUnauthorized, refused), false},
		{"403", call(http.StatusForbidden, refused), false},
		{"the TPM failed", errors.New("tpm: activate credential: integrity check failed"), false},
	} {
		if got := attestRetryable(c.err); got != c.want {
			t.Errorf("%s: retryable %v, want %v", c.name, got, c.want)
		}
	}
}
