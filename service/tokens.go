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

// MintProvisionerToken mints a provisioner token, limited to scope when
// it is not nil (see CheckScope). The caller may not give more than it
// has: a scoped caller is refused (the API lets only the admin mint).
func (s *Service) MintProvisionerToken(ctx context.Context, caller Principal, scope *secrets.Scope) (Minted, error) {
	if caller.Scope != nil {
		return Minted{}, newError(CodeForbidden, "a scoped token may not mint provisioner tokens")
	}
	scope, err := CheckScope(scope)
	if err != nil {
		return Minted{}, err
	}
	return s.mintScoped(ctx, caller, secrets.RoleProvisioner, "", scope)
}

// mint creates, stores and audits a token.
func (s *Service) mint(ctx context.Context, caller Principal, role, deviceID string) (Minted, error) {
	return s.mintScoped(ctx, caller, role, deviceID, nil)
}

// mintScoped creates, stores and audits a token with scope.
func (s *Service) mintScoped(ctx context.Context, caller Principal, role, deviceID string, scope *secrets.Scope) (Minted, error) {
	m, err := s.newToken(ctx, role, deviceID, time.Now())
	if err != nil {
		return Minted{}, err
	}
	m.Record.Scope = scope
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
	if t.Scope != nil {
		ev = ev.Strs("scopeGroups", t.Scope.Groups).Interface("scopeLabels", t.Scope.Labels)
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
