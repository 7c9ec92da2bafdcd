package service

import (
	"context"
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
)

// Doctor compares a triple captured from device id (the ClientId,
// Username and Password it sent, and the broker's CONNACK code or
// cloud.NoConnack) with what the device's recipe produces and says which
// part differs and the likely cause (cloud.Registry.Diagnose). at is when the
// device was refused; zero means now. The device is read from the store,
// not the cache, so that the diagnosis uses the secret as it is now; so is
// the group of a device that has no secret of its own, whose key is derived
// from the group key as when it signs (a group that does not derive one is
// CodeConflict, as issuing is). The
// result, the audit event and any error hold neither the secret, nor the
// expected password, nor the password sent. A device of a cloud the doctor
// does not cover is refused with CodeInvalid naming the field cloud.
//
// After a rotation (RotateSecret) the device's previous secret is tried
// too when the password does not match with the current one: a device or a
// cloud that has not yet taken the new secret shows as a match with
// Secret "previous", so the two can be compared while the change
// propagates.
//
// Cost: one store read (two for a device whose key is derived from its
// group's) and at most a few hundred HMACs (twice that after a rotation).
func (s *Service) Doctor(ctx context.Context, caller Principal, id string, got cloud.Triple, connack int, at time.Time) (DoctorReport, error) {
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		return DoctorReport{}, fmt.Errorf("reading device: %w", err)
	}
	if at.IsZero() {
		at = s.now()
	}
	secret, err := s.deviceSecretFrom(ctx, d, s.store.GetGroup)
	if err != nil {
		return DoctorReport{}, err
	}
	req := cloud.Request{Cloud: d.Cloud, DeviceID: d.ID, Params: d.Params, Secret: secret, Now: at}
	dg, err := s.clouds.Diagnose(req, got, connack)
	if err != nil {
		return DoctorReport{}, fmt.Errorf("diagnosing device %s: %w", d.ID, err)
	}
	report := DoctorReport{Diagnosis: dg, Secret: SecretCurrent, SecretVersion: max(d.SecretVersion, 1)}
	if d.PreviousSecret != "" && !passwordMatches(dg) {
		req.Secret = d.PreviousSecret
		prev, err := s.clouds.Diagnose(req, got, connack)
		if err != nil {
			return DoctorReport{}, fmt.Errorf("diagnosing device %s with its previous secret: %w", d.ID, err)
		}
		if passwordMatches(prev) {
			report.Diagnosis, report.Secret, dg = prev, SecretPrevious, prev
		}
	}
	var differs []string
	for _, f := range dg.Findings {
		if f.Status == cloud.StatusDiffers {
			differs = append(differs, f.Part)
		}
	}
	audit(ctx, caller, "device.doctor").Str("deviceId", d.ID).Str("cloud", d.Cloud).Bool("match", dg.Match).
		Strs("differs", differs).Int("connack", connack).Time("at", dg.At).Str("secret", report.Secret).
		Int64("secretVersion", report.SecretVersion).Msg("audit")
	return report, nil
}

// Which of a device's secrets a DoctorReport's findings were computed with.
const (
	SecretCurrent  = "current"
	SecretPrevious = "previous"
)

// DoctorReport is a diagnosis of a captured triple and the secret it was
// made with.
type DoctorReport struct {
	cloud.Diagnosis
	// Secret is SecretPrevious when the password matches the device's
	// previous secret and not its current one, else SecretCurrent.
	Secret string
	// SecretVersion is the device's current secret version.
	SecretVersion int64
}

// passwordMatches reports whether a diagnosis found the password as the
// recipe produces it: it has findings on the password (a cloud may give
// several: the signature, the expiry), none of which differs.
func passwordMatches(dg cloud.Diagnosis) bool {
	seen := false
	for _, f := range dg.Findings {
		if f.Part != cloud.PartPassword {
			continue
		}
		if f.Status == cloud.StatusDiffers {
			return false
		}
		seen = true
	}
	return seen
}
