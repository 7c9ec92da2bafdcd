package service

// Device keys: public keys bound to a device, with which it proves
// possession on every call (a DPoP proof, internal/dpop) instead of
// sending a bearer token. They are stored in the device's record, so the
// issuing path finds them in the record it reads anyway (the cache).

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/credsign/credsign/internal/dpop"
	"github.com/credsign/credsign/secrets"
)

// dpopNonceKeyName is the KeyStore name of the HMAC key of DPoP server
// nonces, shared by the replicas like the device token MAC key.
const dpopNonceKeyName = "dpop-nonce-key"

// Attestation values of a device key.
const (
	AttestationNone = "none"
	AttestationTPM  = "tpm"
)

// ProofError is a refused proof of possession: a CodeUnauthorized *Error
// whose Reason the API sends as the problem's reason member and in
// WWW-Authenticate: DPoP.
func proofError(err error) error {
	var de *dpop.Error
	if errors.As(err, &de) {
		return &Error{Code: CodeUnauthorized, Detail: de.Detail, Reason: string(de.Reason)}
	}
	if errors.Is(err, dpop.ErrBusy) {
		return newError(CodeBusy, dpop.ErrBusy.Error())
	}
	return err
}

func refusal(r dpop.Reason, detail string) *Error {
	return &Error{Code: CodeUnauthorized, Detail: detail, Reason: string(r)}
}

// proofs holds the verifier, made on first use once the nonce key is read
// from (or created in) the store.
type proofs struct {
	publicURL    string
	requireNonce bool
	maxJTIs      int

	mu sync.Mutex
	v  *dpop.Verifier
	// failed is when reading the nonce key last failed: the store is not
	// asked again for nonceKeyRetry, so that an outage does not put a
	// store call (under mu) in every device request.
	failed time.Time
	err    error
}

// nonceKeyRetry is how long a failure to read the nonce key is reused.
const nonceKeyRetry = 5 * time.Second

// verifier returns the proof verifier, reading the nonce key on first use.
func (s *Service) verifier(ctx context.Context) (*dpop.Verifier, error) {
	s.proofs.mu.Lock()
	defer s.proofs.mu.Unlock()
	if s.proofs.v != nil {
		return s.proofs.v, nil
	}
	if s.now().Sub(s.proofs.failed) < nonceKeyRetry {
		return nil, s.proofs.err
	}
	v, err := s.loadVerifier(ctx)
	if err != nil {
		s.proofs.failed, s.proofs.err = s.now(), err
		return nil, err
	}
	s.proofs.v = v
	return v, nil
}

// loadVerifier reads the nonce key (creating it on first use) and makes
// the verifier.
func (s *Service) loadVerifier(ctx context.Context) (*dpop.Verifier, error) {
	key, err := sharedKey(ctx, s.store, dpopNonceKeyName, "DPoP nonce key")
	if err != nil {
		return nil, err
	}
	v, err := dpop.NewVerifier(dpop.Config{NonceKey: key, PublicURL: s.proofs.publicURL, MaxJTIs: s.proofs.maxJTIs, Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	return v, nil
}

// sharedKey returns the random 32-byte key kept in store under name,
// creating it on first use: of replicas that create it at once, one write
// wins and the others read it. what names the key in errors.
func sharedKey(ctx context.Context, store secrets.KeyStore, name, what string) ([]byte, error) {
	key, _, err := store.GetKey(ctx, name)
	if errors.Is(err, secrets.ErrNotFound) {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, fmt.Errorf("generating the %s: %w", what, err)
		}
		_, err = store.PutKey(ctx, name, fresh, 0)
		switch {
		case err == nil:
			key = fresh
		case errors.Is(err, secrets.ErrConflict):
			// Another replica created it first: use theirs.
			key, _, err = store.GetKey(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", what, err)
	}
	return key, nil
}

// ProofRequest is what a proof of possession is checked against.
type ProofRequest struct {
	// Proof is the DPoP header's value.
	Proof string
	// Method is the request's method.
	Method string
	// TLS and Host are how the request reached the server (ignored when
	// the server has a public URL), EscapedPath its path.
	TLS         bool
	Host        string
	EscapedPath string
	// DeviceID is the device the operation acts on (the path's {id}).
	DeviceID string
}

// DPoPNonce returns a fresh server nonce for the DPoP-Nonce header, ""
// when the nonce key cannot be read.
func (s *Service) DPoPNonce(ctx context.Context) string {
	v, err := s.verifier(ctx)
	if err != nil {
		return ""
	}
	return v.Nonce()
}

// verifyProof checks a proof's form, signature, method, URL and time (not
// its key's binding, not its jti).
func (s *Service) verifyProof(ctx context.Context, req ProofRequest) (*dpop.Verifier, dpop.Proof, error) {
	v, err := s.verifier(ctx)
	if err != nil {
		return nil, dpop.Proof{}, err
	}
	p, err := v.Verify(req.Proof, req.Method, v.ExpectedURL(req.TLS, req.Host, req.EscapedPath), s.proofs.requireNonce)
	if err != nil {
		return nil, dpop.Proof{}, proofError(err)
	}
	return v, p, nil
}

// AuthenticateProof authenticates a device's call by its proof of
// possession alone: a valid proof for this request signed by one of the
// keys of device req.DeviceID, not seen before on this replica. The
// caller is then that device, its TokenID "key:" and the key's ID.
//
// Cost: no store read with the device in the cache (one without), one
// signature verification, one jti cache insert.
func (s *Service) AuthenticateProof(ctx context.Context, req ProofRequest) (Principal, error) {
	v, p, err := s.verifyProof(ctx, req)
	if err != nil {
		return Principal{}, err
	}
	if !secrets.ValidID(req.DeviceID) {
		return Principal{}, refusal(dpop.UnknownKey, "a DPoP proof authenticates a device's own operations only")
	}
	d, err := s.cache.device(ctx, req.DeviceID)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return Principal{}, refusal(dpop.UnknownKey, "the DPoP proof's key is not one of this device's keys")
	case err != nil:
		return Principal{}, fmt.Errorf("reading the device of a proof: %w", err)
	}
	if !hasKey(d, p.KeyID) {
		return Principal{}, refusal(dpop.UnknownKey, "the DPoP proof's key is not one of this device's keys")
	}
	if err := v.Accept(p); err != nil {
		return Principal{}, proofError(err)
	}
	return Principal{TokenID: "key:" + p.KeyID, Role: secrets.RoleDevice, DeviceID: d.ID, CreatedAt: d.CreatedAt, KeyID: p.KeyID}, nil
}

func hasKey(d secrets.Device, kid string) bool {
	for _, k := range d.Keys {
		if k.ID == kid {
			return true
		}
	}
	return false
}

// ProveEnrolment checks the proof sent with an enrolment (the key to bind
// to the new device) and returns the enrolment caller with that key.
func (s *Service) ProveEnrolment(ctx context.Context, caller Principal, req ProofRequest) (Principal, error) {
	v, p, err := s.verifyProof(ctx, req)
	if err != nil {
		return Principal{}, err
	}
	if err := v.Accept(p); err != nil {
		return Principal{}, proofError(err)
	}
	caller.KeyID = p.KeyID
	caller.proofKey = &p.Key
	return caller, nil
}

// CheckBearer refuses a device's bearer token when the device or its
// group requires proofs of possession (reason key-required). Cost: the
// device and group reads of the issuing path, from the cache.
func (s *Service) CheckBearer(ctx context.Context, p Principal) error {
	if p.Role != secrets.RoleDevice || p.KeyID != "" {
		return nil
	}
	d, err := s.cache.device(ctx, p.DeviceID)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return nil // the operation answers 404 or 403 as it always has
	case err != nil:
		return fmt.Errorf("reading the device of a token: %w", err)
	}
	required := d.RequireKey
	if !required && d.Group != "" {
		g, err := s.cache.group(ctx, d.Group)
		if err != nil && !errors.Is(err, secrets.ErrNotFound) {
			return fmt.Errorf("reading the group of a token's device: %w", err)
		}
		required = err == nil && g.RequireKey
	}
	if required {
		return refusal(dpop.KeyRequired, "this device must authenticate with a DPoP proof signed by its key, not a bearer token")
	}
	return nil
}

// DeviceKey is a device's key as the API shows it.
type DeviceKey = secrets.DeviceKey

// newDeviceKey returns the record of a key to bind.
func newDeviceKey(jwk []byte, name, attestation string, now time.Time) (secrets.DeviceKey, error) {
	key, kid, err := dpop.ParseKey(jwk)
	if err != nil {
		return secrets.DeviceKey{}, invalid(FieldError{Field: "jwk", Reason: err.Error()})
	}
	pub, err := json.Marshal(key)
	if err != nil {
		return secrets.DeviceKey{}, fmt.Errorf("encoding a device key: %w", err)
	}
	return secrets.DeviceKey{ID: kid, JWK: pub, Name: name, Attestation: attestation, CreatedAt: now.UTC().Truncate(time.Second)}, nil
}

// AddDeviceKey binds the public key jwk (a JWK, ES256 P-256 or Ed25519)
// to device id, named name. A key with private members is refused
// (CodeInvalid), a key the device has (CodeConflict), and a fifth key.
//
// Cost: one store read and one write (more when another write races it).
func (s *Service) AddDeviceKey(ctx context.Context, caller Principal, id string, jwk []byte, name string) (DeviceKey, error) {
	k, err := newDeviceKey(jwk, name, AttestationNone, s.now())
	if err != nil {
		return DeviceKey{}, err
	}
	err = s.updateKeys(ctx, id, func(d *secrets.Device) error {
		if hasKey(*d, k.ID) {
			return newError(CodeConflict, "the device has this key")
		}
		if len(d.Keys) >= secrets.MaxDeviceKeys {
			return newError(CodeConflict, fmt.Sprintf("the device has %d keys, the most it may hold; remove one first", secrets.MaxDeviceKeys))
		}
		d.Keys = append(d.Keys, k)
		return nil
	})
	if err != nil {
		return DeviceKey{}, err
	}
	audit(ctx, caller, "device_key.added").Str("deviceId", id).Str("keyId", k.ID).Msg("audit")
	return k, nil
}

// ListDeviceKeys returns the keys of device id. Cost: one store read.
func (s *Service) ListDeviceKeys(ctx context.Context, id string) ([]DeviceKey, error) {
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reading device: %w", err)
	}
	if d.Keys == nil {
		return []DeviceKey{}, nil
	}
	return d.Keys, nil
}

// DeleteDeviceKey removes key kid from device id (CodeNotFound when the
// device has no such key). Proofs signed with it are refused from then on
// (on other replicas once their cache of the device lapses).
//
// Cost: one store read and one write.
func (s *Service) DeleteDeviceKey(ctx context.Context, caller Principal, id, kid string) error {
	err := s.updateKeys(ctx, id, func(d *secrets.Device) error {
		for i, k := range d.Keys {
			if k.ID == kid {
				d.Keys = append(d.Keys[:i:i], d.Keys[i+1:]...)
				return nil
			}
		}
		return newError(CodeNotFound, "the device has no such key")
	})
	if err != nil {
		return err
	}
	audit(ctx, caller, "device_key.removed").Str("deviceId", id).Str("keyId", kid).Msg("audit")
	return nil
}

// updateKeys applies change to device id's record and writes it back
// under compare-and-set, read again after losing a race.
func (s *Service) updateKeys(ctx context.Context, id string, change func(*secrets.Device) error) error {
	for attempt := range casAttempts {
		if attempt > 0 {
			backoff(ctx, attempt)
		}
		d, err := s.store.GetDevice(ctx, id)
		if err != nil {
			return fmt.Errorf("reading device: %w", err)
		}
		if err := change(&d); err != nil {
			return err
		}
		_, err = s.store.PutDevice(ctx, d, d.Version)
		s.cache.forgetDevice(id) // even on error: the write may have landed
		if errors.Is(err, secrets.ErrConflict) || errors.Is(err, secrets.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("storing device: %w", err)
		}
		return nil
	}
	return fmt.Errorf("changing a device's keys: %w", errBusy)
}

// enrolmentKey is the record of the key an enrolment's proof was signed
// with.
func (s *Service) enrolmentKey(caller Principal, attestation string) (secrets.DeviceKey, error) {
	pub, err := json.Marshal(caller.proofKey)
	if err != nil {
		return secrets.DeviceKey{}, fmt.Errorf("encoding a device key: %w", err)
	}
	return newDeviceKey(pub, "enrolment", attestation, s.now())
}
