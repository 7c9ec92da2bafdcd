package tpmkey_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-tpm/tpm2"

	"github.com/credsign/credsign/agent/tpmkey"
	"github.com/credsign/credsign/internal/testing/swtpmtest"
	"github.com/credsign/credsign/internal/testing/testutil"
)

func TestKeyInTPM(t *testing.T) {
	tpm := swtpmtest.Start(t, "").Open(t)
	file := filepath.Join(t.TempDir(), "device.tpmkey")
	if err := tpmkey.Create(tpm, file); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := tpmkey.Create(tpm, file); err == nil {
		t.Error("Create replaced an existing key file")
	}
	key, err := tpmkey.Load(tpm, file)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve.Params().Name != "P-256" {
		t.Fatalf("public key %T, want a P-256 *ecdsa.PublicKey", key.Public())
	}

	t.Run("the private part cannot leave the TPM", func(t *testing.T) {
		// The public area as the TPM holds it, read back.
		b := key.PublicArea()
		p2b, err := tpm2.Unmarshal[tpm2.TPM2BPublic](b)
		if err != nil {
			t.Fatal(err)
		}
		p, err := p2b.Contents()
		if err != nil {
			t.Fatal(err)
		}
		a := p.ObjectAttributes
		if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin {
			t.Errorf("attributes fixedTPM=%v fixedParent=%v sensitiveDataOrigin=%v, want all set", a.FixedTPM, a.FixedParent, a.SensitiveDataOrigin)
		}
		if a.Decrypt || a.Restricted || !a.SignEncrypt {
			t.Errorf("attributes decrypt=%v restricted=%v sign=%v, want a plain signing key", a.Decrypt, a.Restricted, a.SignEncrypt)
		}
		got, err := tpmkey.ECDSAPublic(p)
		if err != nil || !got.Equal(pub) {
			t.Errorf("public area's key %v (%v), want the signer's", got, err)
		}
		// The file holds the key wrapped, not the private scalar.
		raw, _ := os.ReadFile(file)
		blk, _ := pem.Decode(raw)
		if blk == nil || blk.Type != "TSS2 PRIVATE KEY" {
			t.Fatalf("key file is not a TSS2 PRIVATE KEY PEM")
		}
	})

	t.Run("signs proofs that verify with the public key", func(t *testing.T) {
		for range 3 {
			h := sha256.Sum256([]byte("payload"))
			der, err := key.Sign(rand.Reader, h[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if !ecdsa.VerifyASN1(pub, h[:], der) {
				t.Fatal("TPM signature does not verify with crypto/ecdsa")
			}
		}
		claims := `{"jti":"` + strings.Repeat("a", 22) + `","htm":"GET","htu":"https://credsign.example/v1/devices/d/credentials","iat":` + itoa(time.Now().Unix()) + `}`
		compact := testutil.ES256Signer{Signer: key}.Proof(t, claims)
		parsed, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		jwk := parsed.Signatures[0].Protected.JSONWebKey
		if jwk == nil || !jwk.IsPublic() {
			t.Fatal("proof header has no public jwk")
		}
		out, err := parsed.Verify(jwk)
		if err != nil {
			t.Fatalf("proof signed in the TPM does not verify: %v", err)
		}
		if string(out) != claims {
			t.Fatalf("payload %s", out)
		}
		if _, err := parsed.Verify(pub); err != nil {
			t.Fatalf("proof does not verify with the key's public key: %v", err)
		}
	})

	t.Run("refuses other digests", func(t *testing.T) {
		if _, err := key.Sign(rand.Reader, make([]byte, 48), crypto.SHA384); err == nil {
			t.Error("signed a SHA-384 digest")
		}
	})

	t.Run("the key file is useless with another TPM", func(t *testing.T) {
		other := swtpmtest.Start(t, "").Open(t)
		if k, err := tpmkey.Load(other, file); err == nil {
			k.Close()
			t.Fatal("another TPM loaded the key")
		}
	})

	t.Run("the file loads the same key again", func(t *testing.T) {
		k2, err := tpmkey.Load(tpm, file)
		if err != nil {
			t.Fatal(err)
		}
		defer k2.Close()
		if !k2.Public().(*ecdsa.PublicKey).Equal(pub) || !bytes.Equal(k2.PublicArea(), key.PublicArea()) {
			t.Error("the same file loaded another key")
		}
	})
}

func TestLoadRefusesBadFiles(t *testing.T) {
	tpm := swtpmtest.Start(t, "").Open(t)
	dir := t.TempDir()
	for _, tc := range []struct{ name, text string }{
		{"empty", ""},
		{"another PEM", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
		{"not ASN.1", "-----BEGIN TSS2 PRIVATE KEY-----\nAAAA\n-----END TSS2 PRIVATE KEY-----\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(f, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if k, err := tpmkey.Load(tpm, f); err == nil {
				k.Close()
				t.Fatal("loaded")
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// BenchmarkSign measures one proof signature in swtpm (a hardware TPM is
// slower: tens of milliseconds for ECDSA P-256).
func BenchmarkSign(b *testing.B) {
	key := swtpmtest.NewKey(b, swtpmtest.Start(b, "").Open(b))
	h := sha256.Sum256([]byte("proof"))
	for b.Loop() {
		if _, err := key.Sign(rand.Reader, h[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}
