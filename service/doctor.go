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
// Cost: one store read (two for a device whose key is derived from its
// group's) and at most a few hundred HMACs.
func (s *Service) Doctor(ctx context.Context, caller Principal, id string, got cloud.Triple, connack int, at time.Time) (cloud.Diagnosis, error) {
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		return cloud.Diagnosis{}, fmt.Errorf("reading device: %w", err)
	}
	if at.IsZero() {
		at = s.now()
	}
	secret, err := s.deviceSecretFrom(ctx, d, s.store.GetGroup)
	if err != nil {
		return cloud.Diagnosis{}, err
	}
	dg, err := s.clouds.Diagnose(cloud.Request{Cloud: d.Cloud, DeviceID: d.ID, Params: d.Params, Secret: secret, Now: at}, got, connack)
	if err != nil {
		return cloud.Diagnosis{}, fmt.Errorf("diagnosing device %s: %w", d.ID, err)
	}
	var differs []string
	for _, f := range dg.Findings {
		if f.Status == cloud.StatusDiffers {
			differs = append(differs, f.Part)
		}
	}
	audit(ctx, caller, "device.doctor").Str("deviceId", d.ID).Str("cloud", d.Cloud).Bool("match", dg.Match).
		Strs("differs", differs).Int("connack", connack).Time("at", dg.At).Msg("audit")
	return dg, nil
}
