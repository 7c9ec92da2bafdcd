package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/secrets"
)

// jwtKeysName is the KeyStore name of the deployment's JWT key ring.
const jwtKeysName = "jwt-signing-keys"

// keepPrevious is how many earlier keys the JWKS still publishes after a
// rotation, so that tokens signed just before it keep verifying.
const keepPrevious = 2

// keyRing is the stored form of the JWT keys: PKCS #8 PEMs.
type keyRing struct {
	Current  string   `json:"current"`
	Previous []string `json:"previous,omitempty"`
}

// jwtKeys is the deployment's JWT signing key pair for the token family
// (cloud.Cloud.Tokens): created by the first replica that needs it, kept in the store
// so every replica signs with the same key, rotated with overlap, and read
// again at most once per cache TTL so that a rotation on one replica
// reaches the others within it.
type jwtKeys struct {
	store secrets.KeyStore
	alg   string
	ttl   time.Duration
	now   func() time.Time

	mu      sync.RWMutex
	current *cloud.TokenKey
	all     []*cloud.TokenKey // current first
	fetched time.Time
	flight  singleflight.Group
}

// keys returns the signing key and every published key, reading the ring
// again when it is older than the TTL, creating it on first use.
func (k *jwtKeys) keys(ctx context.Context) (*cloud.TokenKey, []*cloud.TokenKey, error) {
	k.mu.RLock()
	cur, all, fetched := k.current, k.all, k.fetched
	k.mu.RUnlock()
	if cur != nil && k.ttl > 0 && k.now().Sub(fetched) < k.ttl {
		return cur, all, nil
	}
	_, err, _ := k.flight.Do("load", func() (any, error) {
		return nil, k.load(context.WithoutCancel(ctx))
	})
	if err != nil {
		if cur != nil && errors.Is(err, secrets.ErrUnavailable) {
			return cur, all, nil // keep signing with the key we have
		}
		return nil, nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current, k.all, nil
}

// load reads the ring, creating it when there is none.
func (k *jwtKeys) load(ctx context.Context) error {
	ring, _, err := k.read(ctx)
	if errors.Is(err, secrets.ErrNotFound) {
		fresh, gerr := k.generate()
		if gerr != nil {
			return gerr
		}
		ring = keyRing{Current: fresh}
		err = k.write(ctx, ring, 0)
		if errors.Is(err, secrets.ErrConflict) {
			ring, _, err = k.read(ctx) // another replica created it first
		}
	}
	if err != nil {
		return fmt.Errorf("loading the JWT signing keys: %w", err)
	}
	return k.use(ring)
}

func (k *jwtKeys) read(ctx context.Context) (keyRing, int64, error) {
	raw, version, err := k.store.GetKey(ctx, jwtKeysName)
	if err != nil {
		return keyRing{}, 0, err
	}
	var ring keyRing
	if err := json.Unmarshal(raw, &ring); err != nil || ring.Current == "" {
		return keyRing{}, 0, fmt.Errorf("the JWT key ring in the store is damaged")
	}
	return ring, version, nil
}

func (k *jwtKeys) write(ctx context.Context, ring keyRing, ifVersion int64) error {
	raw, err := json.Marshal(ring)
	if err != nil {
		return err
	}
	_, err = k.store.PutKey(ctx, jwtKeysName, raw, ifVersion)
	return err
}

func (k *jwtKeys) generate() (string, error) {
	key, err := cloud.GenerateTokenKey(k.alg)
	if err != nil {
		return "", fmt.Errorf("generating a JWT signing key: %w", err)
	}
	pem, err := key.MarshalPEM()
	return string(pem), err
}

// use parses ring and makes it this replica's.
func (k *jwtKeys) use(ring keyRing) error {
	var all []*cloud.TokenKey
	for _, p := range append([]string{ring.Current}, ring.Previous...) {
		key, err := cloud.ParseTokenKeyPEM([]byte(p))
		if err != nil {
			return fmt.Errorf("the JWT key ring in the store: %w", err)
		}
		all = append(all, key)
	}
	k.mu.Lock()
	k.current, k.all, k.fetched = all[0], all, k.now()
	k.mu.Unlock()
	return nil
}

// rotate makes a new key current, keeping the last ones published.
func (k *jwtKeys) rotate(ctx context.Context) (*cloud.TokenKey, error) {
	for attempt := 0; ; attempt++ {
		ring, version, err := k.read(ctx)
		if errors.Is(err, secrets.ErrNotFound) {
			if err = k.load(ctx); err == nil {
				ring, version, err = k.read(ctx)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("rotating the JWT signing key: %w", err)
		}
		fresh, err := k.generate()
		if err != nil {
			return nil, err
		}
		next := keyRing{Current: fresh, Previous: append([]string{ring.Current}, ring.Previous...)}
		if len(next.Previous) > keepPrevious {
			next.Previous = next.Previous[:keepPrevious]
		}
		err = k.write(ctx, next, version)
		if errors.Is(err, secrets.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("rotating the JWT signing key: %w", err)
		}
		if err := k.use(next); err != nil {
			return nil, err
		}
		k.mu.RLock()
		defer k.mu.RUnlock()
		return k.current, nil
	}
}

// JWKS returns the JSON Web Key Set of the deployment's JWT keys (the
// current one and those kept after rotations), creating the first key if
// there is none yet.
func (s *Service) JWKS(ctx context.Context) ([]byte, error) {
	_, all, err := s.jwt.keys(ctx)
	if err != nil {
		return nil, err
	}
	return cloud.JWKS(all...)
}

// RotateJWTKey makes a new JWT signing key current; tokens signed with the
// earlier ones keep verifying while the JWKS publishes them. Other replicas
// sign with the new key within the cache TTL. It returns the new key's ID.
func (s *Service) RotateJWTKey(ctx context.Context, caller Principal) (string, error) {
	k, err := s.jwt.rotate(ctx)
	if err != nil {
		return "", err
	}
	audit(ctx, caller, "jwt.key.rotated").Str("kid", k.ID).Msg("audit")
	return k.ID, nil
}
