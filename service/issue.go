package service

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/internal/metrics"
	"github.com/credsign/credsign/secrets"
)

// Issue signs fresh credentials for device id on behalf of caller. ttl
// zero asks for the cloud's default lifetime (for a device token, at most
// the server's cap). The caller passed Authorize for id; a device token
// gets nothing for a device created after the token was minted.
//
// Cost: one HMAC, and one store read of the device when the cache has no
// fresh copy (the caller's token was read, or found in the cache, by
// Authenticate); a device of a group without a secret of its own costs
// one more HMAC (the key derived from the group key) and, when the cache
// has no fresh copy of its group, one more read. While the store is unavailable, a device the cache knows
// is served for CacheConfig.StaleFor past its TTL.
func (s *Service) Issue(ctx context.Context, caller Principal, id string, ttl time.Duration) (cloud.Credentials, error) {
	d, err := s.cache.device(ctx, id)
	if err != nil {
		outcome := metrics.OutcomeError
		if errors.Is(err, secrets.ErrNotFound) {
			outcome = metrics.OutcomeNotFound
		}
		s.metrics.Issued("", outcome)
		return cloud.Credentials{}, fmt.Errorf("reading device: %w", err)
	}
	if caller.Role == secrets.RoleDevice && caller.CreatedAt.Before(d.CreatedAt) {
		// The token was minted for an earlier device of the same ID.
		s.metrics.Issued(d.Cloud, metrics.OutcomeDenied)
		return cloud.Credentials{}, newError(CodeForbidden, "this token was minted for a device that has since been deleted")
	}
	if caller.Role == secrets.RoleDevice {
		switch {
		case ttl > s.maxDeviceTTL:
			s.metrics.Issued(d.Cloud, metrics.OutcomeRejected)
			return cloud.Credentials{}, invalid(FieldError{Field: "ttlSeconds",
				Reason: strconv.FormatInt(int64(ttl/time.Second), 10) + " seconds is longer than a device token may ask for (at most " +
					strconv.FormatInt(int64(s.maxDeviceTTL/time.Second), 10) + ")"})
		case ttl == 0 && s.defaultTTL(d.Cloud) > s.maxDeviceTTL:
			ttl = s.maxDeviceTTL
		}
	}
	var key *cloud.TokenKey
	if cl, _ := s.clouds.LookupCloud(d.Cloud); cl.Tokens {
		// The token family signs with the deployment's key pair.
		if key, _, err = s.jwt.keys(ctx); err != nil {
			s.metrics.Issued(d.Cloud, metrics.OutcomeError)
			return cloud.Credentials{}, err
		}
	}
	secret, err := s.deviceSecret(ctx, d)
	if err != nil {
		outcome := metrics.OutcomeError
		var se *Error
		if errors.As(err, &se) {
			outcome = metrics.OutcomeRejected // no key to sign with: the device's group is gone or derives none
		}
		s.metrics.Issued(d.Cloud, outcome)
		return cloud.Credentials{}, err
	}
	c, err := s.clouds.Sign(cloud.Request{Cloud: d.Cloud, DeviceID: d.ID, Params: d.Params, Secret: secret, Now: s.now(), TTL: ttl,
		TokenKey: key, Issuer: s.issuer})
	if err != nil {
		outcome := metrics.OutcomeError
		if cloud.IsInvalid(err) {
			outcome = metrics.OutcomeRejected
		}
		s.metrics.Issued(d.Cloud, outcome)
		return cloud.Credentials{}, fmt.Errorf("signing: %w", err)
	}
	s.metrics.Issued(d.Cloud, metrics.OutcomeIssued)
	ev := audit(ctx, caller, "credentials.issued").Str("deviceId", d.ID).Str("cloud", d.Cloud).
		Time("issuedAt", c.IssuedAt).Bool("expiryEnforced", c.ExpiryEnforced)
	if c.ExpiresAt != nil {
		ev = ev.Time("expiresAt", *c.ExpiresAt)
	}
	ev.Msg("audit")
	return c, nil
}

// defaultTTL is the lifetime the named cloud's credentials get when none
// is asked for (shorter than cloud.DefaultTTL for a cloud whose limit is).
func (s *Service) defaultTTL(name string) time.Duration {
	if cl, ok := s.clouds.LookupCloud(name); ok {
		return cl.DefaultTTL
	}
	return cloud.DefaultTTL
}
