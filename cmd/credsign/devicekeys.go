package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/credsign/credsign/internal/apiclient"
)

// deviceKeyVerbs are the verbs of `credsign devices keys`: the public
// keys a device signs its DPoP proofs with.
var deviceKeyVerbs = map[string]subcommand{
	"list":   {"list the public keys bound to a device", deviceKeysList},
	"add":    {"bind a public key to a device (--jwk-file: a JWK, or what credsign-agent keygen prints)", deviceKeysAdd},
	"remove": {"remove a public key from a device: proofs it signs are refused from then on", deviceKeysRemove},
}

func devicesKeys(ctx context.Context, c *clientRun) int {
	return dispatch(ctx, c.name, deviceKeyVerbs, c.args, c.stdin, c.stdout, c.stderr)
}

// deviceKeyRow prints one key for people.
func deviceKeyRow(w io.Writer, k apiclient.DeviceKey) {
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", oneLine(k.Kid), orDash(k.Name), oneLine(string(k.Jwk.Kty))+"/"+orDash(k.Jwk.Crv), oneLine(string(k.Attestation)), k.CreatedAt.UTC().Format(time.RFC3339))
}

const deviceKeyHeader = "KID\tNAME\tKEY\tATTESTATION\tCREATED"

func deviceKeysList(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("ID", nil); !ok {
		return code
	}
	res, err := c.client.ListDeviceKeysWithResponse(ctx, c.pos[0])
	return c.done(res, err, func(w io.Writer) {
		fmt.Fprintln(w, deviceKeyHeader)
		for _, k := range res.JSON200.Keys {
			deviceKeyRow(w, k)
		}
	})
}

// readJWK reads the public key to bind: a JWK object, or the line
// `credsign-agent keygen` prints ({"kid", "jwk"}), from a file or "-".
// The JWK goes to the server as it was written; the server refuses
// private members.
func (c *clientRun) readJWK(file string) (json.RawMessage, error) {
	b, err := c.readInput("jwk-file", file, "the public JWK, or the output of credsign-agent keygen", 64<<10)
	if err != nil {
		return nil, err
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(b, &doc) != nil {
		return nil, fmt.Errorf("--jwk-file %s is not one JSON object", file)
	}
	if jwk, ok := doc["jwk"]; ok {
		return jwk, nil
	}
	if _, ok := doc["kty"]; !ok {
		return nil, fmt.Errorf("--jwk-file %s has neither kty (a JWK) nor jwk (credsign-agent keygen's output)", file)
	}
	return bytes.TrimSpace(b), nil
}

func deviceKeysAdd(ctx context.Context, c *clientRun) int {
	var body struct {
		JWK  json.RawMessage `json:"jwk"`
		Name string          `json:"name,omitempty"`
	}
	ok, code := c.parse("ID", func(fs *flag.FlagSet) {
		c.inputFlag(fs, "jwk-file", "`FILE` holding the public JWK, or the JSON line credsign-agent keygen prints ('-' for standard input)", func(file string) (err error) {
			body.JWK, err = c.readJWK(file)
			return err
		})
		fs.StringVar(&body.Name, "name", "", "what to call the key, shown when keys are listed")
	})
	if !ok {
		return code
	}
	doc, err := json.Marshal(body)
	if err != nil {
		return c.usage("--jwk-file: %v", err)
	}
	res, err := c.client.AddDeviceKeyWithBodyWithResponse(ctx, c.pos[0], "application/json", bytes.NewReader(doc))
	return c.done(res, err, func(w io.Writer) {
		fmt.Fprintln(w, deviceKeyHeader)
		deviceKeyRow(w, *res.JSON201)
	})
}

func deviceKeysRemove(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("ID KID", nil); !ok {
		return code
	}
	res, err := c.client.RemoveDeviceKeyWithResponse(ctx, c.pos[0], c.pos[1])
	return c.deleted(res, err, "key "+c.pos[1]+" of device "+c.pos[0]+" removed")
}
