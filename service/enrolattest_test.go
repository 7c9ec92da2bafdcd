package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/swtpmtest"
	"github.com/credsign/credsign/service/tpmattest"
)

// TestEnrolAttestation runs both steps of TPM attestation through the
// service with a manufactured swtpm: the challenge for an enrolment token,
// and VerifyEnrolAttestation's check of the answer for that token and
// device only.
func TestEnrolAttestation(t *testing.T) {
	ca := swtpmtest.NewCA(t)
	dev := swtpmtest.NewDevice(t, ca)

	v, err := tpmattest.New(tpmattest.Config{CAs: ca.PEM})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newService(t, Config{TPMAttestation: v})
	ctx := context.Background()
	putLamps(t, s)
	_, text := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 5, TTL: time.Hour, IDPattern: "lamp-[0-9]+"})
	_, text2 := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 5, TTL: time.Hour})
	caller, caller2 := mustAuth(t, s, text), mustAuth(t, s, text2)
	req := tpmattest.Request{EKCert: dev.Att.EKCert(), AKPublic: dev.Att.AKPublic()}

	answer := func(t *testing.T, c tpmattest.Challenge) tpmattest.Attestation {
		t.Helper()
		secret, cert := dev.Answer(t, c.ID, c.CredentialBlob, c.Secret)
		return tpmattest.Attestation{ChallengeID: c.ID, ActivatedSecret: secret, KeyPublic: cert.Public, Attest: cert.Attest, Signature: cert.Signature}
	}
	for _, tc := range []struct {
		name    string
		caller  Principal
		id      string
		wantErr string
	}{
		{"the same token and device", caller, "lamp-1", ""},
		{"another device", caller, "lamp-2", "another device"},
		{"another enrolment token", caller2, "lamp-1", "another device or enrolment token"},
		{"a device token", Principal{Role: "device", DeviceID: "lamp-1"}, "lamp-1", "only an enrolment token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := s.EnrolAttest(ctx, caller, "lamp-1", req)
			if err != nil {
				t.Fatal(err)
			}
			err = s.VerifyEnrolAttestation(ctx, tc.caller, tc.id, answer(t, c), dev.Key.Public())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) || se.Code != CodeForbidden || !strings.Contains(se.Detail, tc.wantErr) {
				t.Fatalf("VerifyEnrolAttestation = %v, want 403 %q", err, tc.wantErr)
			}
		})
	}
	t.Run("the token's ID pattern applies", func(t *testing.T) {
		_, err := s.EnrolAttest(ctx, caller, "pump-1", req)
		var se *Error
		if !errors.As(err, &se) || se.Code != CodeForbidden {
			t.Fatalf("EnrolAttest = %v, want 403", err)
		}
	})
	t.Run("a server without EK CAs refuses", func(t *testing.T) {
		s2, _ := newService(t, Config{})
		_, err := s2.EnrolAttest(ctx, caller, "lamp-1", req)
		var se *Error
		if !errors.As(err, &se) || se.Code != CodeForbidden || !strings.Contains(se.Detail, "--tpm-ek-ca") {
			t.Fatalf("EnrolAttest = %v", err)
		}
	})
}

// TestRequireAttestation: a group that requires TPM attestation refuses an
// enrolment without it (403) and changes nothing; the field takes "tpm"
// only.
func TestRequireAttestation(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	doc := azureGroup()
	doc.RequireAttestation = "always"
	if _, _, err := s.PutGroup(ctx, adminCaller, "lamps", doc); !strings.Contains(fmt.Sprint(InvalidFields(err)), "requireAttestation") {
		t.Fatalf("PutGroup with requireAttestation %q: %v", doc.RequireAttestation, err)
	}
	doc.RequireAttestation = AttestationTPM
	g, _, err := s.PutGroup(ctx, adminCaller, "lamps", doc)
	if err != nil || g.RequireAttestation != AttestationTPM {
		t.Fatalf("PutGroup: %+v, %v", g, err)
	}
	et, text := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour})
	_, err = s.Enrol(ctx, mustAuth(t, s, text), "lamp-1", nil)
	var se *Error
	if !errors.As(err, &se) || se.Code != CodeForbidden || !strings.Contains(se.Detail, "requires TPM attestation") {
		t.Fatalf("Enrol = %v, want 403", err)
	}
	if _, err := s.store.GetDevice(ctx, "lamp-1"); err == nil {
		t.Error("the refused enrolment created the device")
	}
	if got, err := s.GetEnrolmentToken(ctx, "lamps", et.ID); err != nil || got.Uses != 0 {
		t.Errorf("the refused enrolment used the token: %+v, %v", got, err)
	}
}
