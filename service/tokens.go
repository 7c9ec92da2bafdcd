package service

import (
	"context"
	"fmt"
	"time"

	"github.com/credsign/credsign/secrets"
)

// MintDeviceToken mints a token bound to device id, which must exist. The
// text in the result is shown once; only its hash is stored.
//
// Cost: one store read, one store write.
func (s *Service) MintDeviceToken(ctx context.Context, caller Principal, id string) (Minted, error) {
	if _, err := s.store.GetDevice(ctx, id); err != nil {
		return Minted{}, fmt.Errorf("reading device: %w", err)
	}
	return s.mint(ctx, caller, secrets.RoleDevice, id)
}

// MintProvisionerToken mints a provisioner token.
func (s *Service) MintProvisionerToken(ctx context.Context, caller Principal) (Minted, error) {
	return s.mint(ctx, caller, secrets.RoleProvisioner, "")
}

// mint creates, stores and audits a token.
func (s *Service) mint(ctx context.Context, caller Principal, role, deviceID string) (Minted, error) {
	m, err := s.newToken(ctx, role, deviceID, time.Now())
	if err != nil {
		return Minted{}, err
	}
	err = s.store.PutToken(ctx, m.Record)
	s.cache.forgetHash(m.Record.Hash)
	if err != nil {
		return Minted{}, fmt.Errorf("storing token: %w", err)
	}
	auditMinted(ctx, caller, m.Record)
	return m, nil
}

// newToken creates a token minted at now, without storing it. Token times
// are wall-clock times, like the store's device times they are compared
// with (Config.Now only moves the signing clock).
func (s *Service) newToken(ctx context.Context, role, deviceID string, now time.Time) (Minted, error) {
	m, err := NewToken(role, deviceID, now)
	if err != nil {
		return Minted{}, err
	}
	if role == secrets.RoleDevice {
		// A token that carries its binding (see deviceTokens).
		if m.Text, err = s.devTokens.mint(ctx, m.Record); err != nil {
			return Minted{}, fmt.Errorf("minting a device token: %w", err)
		}
		m.Record.Hash = Hash(m.Text)
	}
	return m, nil
}

// auditMinted records that caller created token t.
func auditMinted(ctx context.Context, caller Principal, t secrets.Token) {
	ev := audit(ctx, caller, "token.created").Str("createdTokenId", t.ID).Str("createdRole", t.Role)
	if t.DeviceID != "" {
		ev = ev.Str("deviceId", t.DeviceID)
	}
	ev.Msg("audit")
}

// RevokeDeviceToken revokes token tokenID of device id; a token of another
// device or role is CodeNotFound.
func (s *Service) RevokeDeviceToken(ctx context.Context, caller Principal, id, tokenID string) error {
	t, err := s.store.GetToken(ctx, tokenID)
	if err != nil {
		return fmt.Errorf("reading token: %w", err)
	}
	if t.Role != secrets.RoleDevice || t.DeviceID != id {
		return newError(CodeNotFound, "this device has no such token")
	}
	return s.revoke(ctx, caller, t)
}

// RevokeToken revokes any token by its ID.
func (s *Service) RevokeToken(ctx context.Context, caller Principal, tokenID string) error {
	t, err := s.store.GetToken(ctx, tokenID)
	if err != nil {
		return fmt.Errorf("reading token: %w", err)
	}
	return s.revoke(ctx, caller, t)
}

func (s *Service) revoke(ctx context.Context, caller Principal, t secrets.Token) error {
	if t.Role == secrets.RoleDevice {
		// First on the list every replica checks device tokens against.
		if err := s.devTokens.revoke(ctx, t.ID); err != nil {
			return fmt.Errorf("revoking token: %w", err)
		}
	}
	err := s.store.RevokeToken(ctx, t.ID, time.Now().UTC())
	s.cache.forgetHash(t.Hash)
	if err != nil {
		return fmt.Errorf("revoking token: %w", err)
	}
	ev := audit(ctx, caller, "token.revoked").Str("revokedTokenId", t.ID).Str("revokedRole", t.Role)
	if t.DeviceID != "" {
		ev = ev.Str("deviceId", t.DeviceID)
	}
	ev.Msg("audit")
	return nil
}
