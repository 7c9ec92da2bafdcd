package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/credsign/credsign/cloud/registration"
	"github.com/credsign/credsign/service"
)

// registrationTimeout bounds one registration call to a cloud, its
// retries and the polling of an Azure DPS assignment included.
const registrationTimeout = 30 * time.Second

// newRegistrationClient returns the client of the clouds' registration
// APIs: the system's roots, plus those of caFile when set.
func newRegistrationClient(caFile string) (*registration.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cloud-ca-file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cloud-ca-file: %s holds no PEM certificate", caFile)
		}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &registration.Client{Kinds: registry.RegistrationKinds(), HTTP: &http.Client{Transport: t, Timeout: registrationTimeout}}, nil
}

// registrar performs the registrations of groups (service.Registrar) with
// package registration: the same request and result, and the package's
// errors mapped to the service's, which say which status the caller gets
// (a refusal 502, an unreachable cloud 503, settings that cannot work 409).
type registrar struct{ c *registration.Client }

// newRegistrar returns the service.Registrar that registers through c,
// with the registration kinds of every cloud when c names none.
func newRegistrar(c *registration.Client) service.Registrar {
	if c.Kinds == nil {
		c.Kinds = registry.RegistrationKinds()
	}
	return registrar{c: c}
}

// Register implements service.Registrar.
func (r registrar) Register(ctx context.Context, req service.RegistrationRequest) (service.RegistrationResult, error) {
	res, err := r.c.Register(ctx, registration.Request{Kind: req.Kind, Params: req.Params, GroupSecret: req.GroupSecret, DeviceID: req.DeviceID})
	switch {
	case err == nil:
		return service.RegistrationResult{Params: res.Params, Secret: res.Secret}, nil
	case errors.Is(err, registration.ErrRefused):
		return service.RegistrationResult{}, fmt.Errorf("%w: %w", service.ErrCloudRefused, err)
	case errors.Is(err, registration.ErrUnavailable):
		return service.RegistrationResult{}, fmt.Errorf("%w: %w", service.ErrCloudUnreachable, err)
	case errors.Is(err, registration.ErrInvalid):
		return service.RegistrationResult{}, fmt.Errorf("%w: %w", service.ErrRegistrationInvalid, err)
	}
	return service.RegistrationResult{}, err
}

// CheckRegistration implements service.RegistrationChecker: a group's
// registration is checked when the group is written, its host against the
// client's policy (registration.Client.Check) included.
func (r registrar) CheckRegistration(kind string, params map[string]string, groupSecret string) []service.FieldError {
	var out []service.FieldError
	for _, f := range r.c.Check(kind, params) {
		out = append(out, service.FieldError{Field: f.Field, Reason: f.Reason})
	}
	if fe := r.c.Kinds.ValidateSecret(kind, groupSecret); fe != nil {
		out = append(out, service.FieldError{Field: fe.Field, Reason: fe.Reason})
	}
	return out
}
