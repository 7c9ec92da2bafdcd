package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

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
		flags: func(fs *flag.FlagSet, c *command) {
			c.values["tpm"] = "/dev/tpmrm0"
			fs.Func("tpm", "the TPM: a device (default /dev/tpmrm0) or tcp:HOST:PORT", func(v string) error { c.values["tpm"] = v; return nil })
			fs.Func("tpm-key-file", "`FILE` of the TPM-wrapped device key (created when missing)", func(v string) error { c.values["tpm-key-file"] = v; return nil })
		},
		check: func(c *command) error {
			if c.values["tpm-key-file"] == "" {
				return usagef("tpm-key needs --tpm-key-file")
			}
			return nil
		},
		run: cmdTPMKey,
	}
}

// cmdTPMKey creates (when missing) and loads the TPM device key and prints
// its public JWK.
func cmdTPMKey(_ context.Context, c *command) error {
	tpm, err := tpmkey.Open(c.values["tpm"])
	if err != nil {
		return err
	}
	defer tpm.Close()
	file := c.values["tpm-key-file"]
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		if err := tpmkey.Create(tpm, file); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "credsign-agent tpm-key: created a key in the TPM, wrapped in %s\n", file)
	}
	key, err := tpmkey.Load(tpm, file)
	if err != nil {
		return err
	}
	defer key.Close()
	jwk, kid, err := publicJWK(key.Public().(*ecdsa.PublicKey))
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
