package service

import (
	"context"
	"crypto"
	"errors"
	"strings"

	"github.com/credsign/credsign/service/tpmattest"
)

// tpmError maps a tpmattest error to the domain's: malformed input is
// invalid (422), an attestation that proves nothing is forbidden (403), and
// a replica full of challenges is unavailable (503, retry later).
func tpmError(err error, field string) error {
	reason := err.Error()
	switch {
	case errors.Is(err, tpmattest.ErrMalformed):
		return invalid(FieldError{Field: field, Reason: strings.TrimPrefix(reason, tpmattest.ErrMalformed.Error()+": ")})
	case errors.Is(err, tpmattest.ErrRefused):
		return newError(CodeForbidden, reason)
	case errors.Is(err, tpmattest.ErrBusy):
		return newError(CodeCloudUnavailable, "too many TPM attestations under way on this server; retry later")
	}
	return err
}

// attestBinding checks that caller is an enrolment token that may enrol
// id and that this server does TPM attestation, and returns what a
// challenge is bound to.
func (s *Service) attestBinding(caller Principal, id string) (tpmattest.Binding, error) {
	if caller.Role != RoleEnrolment || caller.enrol == nil {
		return tpmattest.Binding{}, newError(CodeForbidden, "only an enrolment token may attest a TPM")
	}
	if s.tpm == nil {
		return tpmattest.Binding{}, newError(CodeForbidden, "this server does not verify TPM attestation (it has no TPM EK CAs: credsign serve --tpm-ek-ca)")
	}
	if id == "" {
		return tpmattest.Binding{}, invalid(FieldError{Field: "deviceId", Reason: "is required"})
	}
	rec := caller.enrol.rec
	if rec.IDPattern != "" {
		re, err := s.patterns.get(rec.IDPattern)
		if err != nil || !re.MatchString(id) {
			return tpmattest.Binding{}, newError(CodeForbidden, "the device ID does not match this enrolment token's ID pattern")
		}
	}
	return tpmattest.Binding{Group: rec.Group, DeviceID: id, TokenID: rec.ID}, nil
}

// EnrolAttest is the first step of TPM attestation at enrolment
// (POST /v1/enrol/attest): it verifies the device's EK certificate and AK
// and returns a credential that only that TPM can activate. It reads
// nothing from the store and writes nothing: the challenge is kept in this
// replica's memory (tpmattest).
func (s *Service) EnrolAttest(ctx context.Context, caller Principal, id string, req tpmattest.Request) (tpmattest.Challenge, error) {
	b, err := s.attestBinding(caller, id)
	if err != nil {
		return tpmattest.Challenge{}, err
	}
	c, err := s.tpm.Challenge(ctx, b, req)
	if err != nil {
		audit(ctx, caller, "device.attest_refused").Str("group", b.Group).Str("deviceId", id).Str("reason", err.Error()).Msg("audit")
		return tpmattest.Challenge{}, tpmError(err, "ek")
	}
	return c, nil
}

// VerifyEnrolAttestation checks the second step, at POST /v1/enrol: the
// device's answer a to the challenge made for caller and id, and that the
// TPM certified key is key, the enrolment proof's. Enrol calls it before
// counting a use of the enrolment token; nil means the key may be bound
// with attestation "tpm".
func (s *Service) VerifyEnrolAttestation(ctx context.Context, caller Principal, id string, a tpmattest.Attestation, key crypto.PublicKey) error {
	b, err := s.attestBinding(caller, id)
	if err != nil {
		return err
	}
	if err := s.tpm.VerifyAttestation(ctx, b, a, key); err != nil {
		audit(ctx, caller, "device.attest_refused").Str("group", b.Group).Str("deviceId", id).Str("reason", err.Error()).Msg("audit")
		return tpmError(err, "attestation")
	}
	return nil
}
