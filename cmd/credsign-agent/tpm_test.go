package main

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/credsign/credsign/internal/testing/swtpmtest"
)

// TestTPMKey: tpm-key creates the key in a real software TPM once, prints
// the same public JWK every time, with the RFC 7638 thumbprint as go-jose
// computes it.
func TestTPMKey(t *testing.T) {
	sw := swtpmtest.Start(t, "")
	file := filepath.Join(t.TempDir(), "device.tpmkey")
	var kids []string
	for i := range 2 {
		r := runWith(context.Background(), nil, env(nil), "tpm-key", "--tpm", "tcp:"+sw.Addr, "--tpm-key-file", file)
		if r.code != 0 {
			t.Fatalf("tpm-key: exit %d, stderr %q", r.code, r.stderr)
		}
		if created := strings.Contains(r.stderr, "created a key in the TPM"); created != (i == 0) {
			t.Errorf("run %d: stderr %q", i, r.stderr)
		}
		var out struct {
			Kid string          `json:"kid"`
			JWK json.RawMessage `json:"jwk"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("stdout %q: %v", r.stdout, err)
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(out.JWK); err != nil || !jwk.IsPublic() {
			t.Fatalf("jwk %s: %v", out.JWK, err)
		}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil || base64.RawURLEncoding.EncodeToString(tp) != out.Kid {
			t.Fatalf("kid %q, go-jose's thumbprint %x (%v)", out.Kid, tp, err)
		}
		kids = append(kids, out.Kid)
	}
	if kids[0] != kids[1] {
		t.Errorf("the key changed: %v", kids)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
	r := runWith(context.Background(), nil, env(nil), "tpm-key", "--tpm", "tcp:"+sw.Addr)
	if r.code != 2 || !strings.Contains(r.stderr, "needs --tpm-key-file") {
		t.Errorf("no --tpm-key-file: exit %d, %q", r.code, r.stderr)
	}
	r = runWith(context.Background(), nil, env(nil), "tpm-key", "--tpm", file, "--tpm-key-file", file)
	if r.code != 1 || !strings.Contains(r.stderr, "not a character device") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("a file as the TPM: exit %d, %q", r.code, r.stderr)
	}
}
