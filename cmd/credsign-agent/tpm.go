//go:build !notpm

package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/credsign/credsign/agent/client"
	"github.com/credsign/credsign/agent/tpmkey"
)

func init() {
	commands["tpm-key"] = spec{
		synopsis: "--tpm PATH --tpm-key-file FILE",
		help: `Create the device key in the TPM (ECDSA P-256, made in the TPM under the
owner hierarchy's storage root key, never exported) when --tpm-key-file
does not exist, and print its public key as a JWK with its RFC 7638
thumbprint (kid): the body of POST /v1/devices/{id}/keys for a provisioner
to bind it. The file holds the key wrapped by that TPM (TSS2 PRIVATE KEY
PEM, mode 0600), useless with any other TPM. --tpm is the TPM's device
(/dev/tpmrm0) or tcp:HOST:PORT for a TPM simulator such as swtpm.
`,
		check: func(c *command) error {
			if c.values["tpm-key-file"] == "" {
				return usagef("tpm-key needs --tpm-key-file")
			}
			return nil
		},
		run: cmdTPMKey,
	}
}

// openTPMKey opens the TPM (--tpm, default /dev/tpmrm0) and loads the
// device key wrapped in --tpm-key-file, creating it in the TPM first when
// create is set and the file is missing. The key and the TPM stay open
// until the command ends; c.attest then attests the key at enrolment.
func init() {
	openTPMKey = func(c *command, create bool) (crypto.Signer, error) {
		path := c.values["tpm"]
		if path == "" {
			path = "/dev/tpmrm0"
		}
		tpm, err := tpmkey.Open(path)
		if err != nil {
			return nil, err
		}
		file := c.values["tpm-key-file"]
		if _, err := os.Stat(file); create && errors.Is(err, fs.ErrNotExist) {
			if err := tpmkey.Create(tpm, file); err != nil {
				tpm.Close()
				return nil, err
			}
			fmt.Fprintf(c.stderr, "credsign-agent %s: created a key in the TPM, wrapped in %s\n", c.name, file)
		}
		key, err := tpmkey.Load(tpm, file)
		if err != nil {
			tpm.Close()
			return nil, err
		}
		c.closers = append(c.closers, tpm.Close, key.Close)
		c.attest = func(ctx context.Context, api *client.ClientWithResponses, auth client.RequestEditorFn, deviceID string) (*client.TpmAttestation, error) {
			a, err := tpmkey.NewAttestor(tpm)
			if err != nil {
				return nil, err
			}
			defer a.Close()
			att, err := a.Attest(ctx, api, auth, deviceID, key)
			if err != nil {
				return nil, err
			}
			return &att, nil
		}
		return key, nil
	}
}

// cmdTPMKey creates (when missing) and loads the TPM device key and prints
// its public JWK.
func cmdTPMKey(_ context.Context, c *command) error {
	s, err := c.deviceSigner(true)
	if err != nil {
		return err
	}
	jwk, kid, err := publicJWK(s.Public().(*ecdsa.PublicKey))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"kid": kid, "jwk": jwk})
}

// publicJWK is the JWK of a P-256 public key and its RFC 7638 thumbprint
// (SHA-256 of the required members in lexical order, base64url).
func publicJWK(k *ecdsa.PublicKey) (map[string]string, string, error) {
	b, err := k.Bytes()
	if err != nil {
		return nil, "", fmt.Errorf("public key: %w", err)
	}
	x, y := base64.RawURLEncoding.EncodeToString(b[1:33]), base64.RawURLEncoding.EncodeToString(b[33:])
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y}, base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
