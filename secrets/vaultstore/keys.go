package vaultstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/credsign/credsign/secrets"
)

// keyData is what the store writes at <prefix>keys/<name>: the value as
// standard base64 (KV v2 keeps JSON). The version is the KV version.
type keyData struct {
	Value string `json:"value"`
}

func keyRel(name string) string { return "keys/" + name }

// GetKey implements secrets.KeyStore. Cost: one Vault read.
func (s *Store) GetKey(ctx context.Context, name string) ([]byte, int64, error) {
	if !secrets.ValidID(name) {
		return nil, 0, fmt.Errorf("vaultstore: get key %.64q: %w", name, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	e, err := s.read(ctx, keyRel(name))
	if err == nil && e.data == nil {
		err = secrets.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("vaultstore: get key %q: %w", name, err)
	}
	var kd keyData
	if err := json.Unmarshal(e.data, &kd); err != nil {
		return nil, 0, fmt.Errorf("vaultstore: get key %q: decode record: %w", name, err)
	}
	v, err := base64.StdEncoding.DecodeString(kd.Value)
	if err != nil {
		return nil, 0, fmt.Errorf("vaultstore: get key %q: the value is not base64", name)
	}
	return v, e.version, nil
}

// PutKey implements secrets.KeyStore with KV check-and-set. Cost: one
// Vault write.
func (s *Store) PutKey(ctx context.Context, name string, value []byte, ifVersion int64) (int64, error) {
	if !secrets.ValidID(name) || ifVersion < 0 {
		return 0, fmt.Errorf("vaultstore: put key %.64q: %w", name, secrets.ErrInvalid)
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	enc := base64.StdEncoding.EncodeToString(value)
	v, err := s.write(ctx, keyRel(name), keyData{Value: enc}, ifVersion, enc)
	if err != nil {
		return 0, fmt.Errorf("vaultstore: put key %q: %w", name, err)
	}
	return v, nil
}
