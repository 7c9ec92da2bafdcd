package es256

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
)

func der(t testing.TB, r, s *big.Int) []byte {
	t.Helper()
	b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFromASN1: a signature of crypto/ecdsa becomes r‖s that verifies, with
// short r and s padded; anything else is refused, never cut or padded.
func TestFromASN1(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("proof"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, h[:])
	if err != nil {
		t.Fatal(err)
	}
	raw, err := FromASN1(sig)
	if err != nil {
		t.Fatal(err)
	}
	r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
	if len(raw) != 64 || !ecdsa.Verify(&k.PublicKey, h[:], r, s) {
		t.Fatalf("r‖s %x does not verify", raw)
	}
	if got, err := FromASN1(der(t, big.NewInt(1), big.NewInt(2))); err != nil || !bytes.Equal(got, append(append(make([]byte, 31), 1), append(make([]byte, 31), 2)...)) {
		t.Errorf("small r and s: %x, %v; want each padded to 32 bytes", got, err)
	}
	big257 := new(big.Int).Lsh(big.NewInt(1), 256)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not ASN.1", []byte("r‖s")},
		{"bytes after it", append(der(t, big.NewInt(1), big.NewInt(2)), 0)},
		{"r zero", der(t, big.NewInt(0), big.NewInt(2))},
		{"s negative", der(t, big.NewInt(1), big.NewInt(-2))},
		{"r of 257 bits", der(t, big257, big.NewInt(2))},
		{"s of 257 bits", der(t, big.NewInt(1), big257)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := FromASN1(tc.in); !errors.Is(err, ErrNotP256) || got != nil {
				t.Fatalf("FromASN1 = %x, %v; want ErrNotP256", got, err)
			}
		})
	}
}

// FuzzFromASN1: never panics, and what it accepts is 64 bytes that
// encode back to the same signature.
func FuzzFromASN1(f *testing.F) {
	f.Add(der(f, big.NewInt(1), big.NewInt(2)))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		raw, err := FromASN1(in)
		if err != nil {
			return
		}
		if len(raw) != 64 {
			t.Fatalf("%d bytes", len(raw))
		}
		if back := der(t, new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])); !bytes.Equal(back, in) {
			t.Fatalf("%x became %x, which encodes as %x", in, raw, back)
		}
	})
}
