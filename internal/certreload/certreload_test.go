package certreload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writePair(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func serial(t *testing.T, r *Reloader) int64 {
	t.Helper()
	c, err := r.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.SerialNumber.Int64()
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePair(t, cf, kf, 1)
	var reloads []error
	r, err := New(cf, kf, func(err error) { reloads = append(reloads, err) })
	if err != nil {
		t.Fatal(err)
	}
	if serial(t, r) != 1 {
		t.Fatal("first certificate")
	}
	bump := func() {
		r.mu.Lock()
		r.lastCheck = time.Time{}
		r.mu.Unlock()
		later := time.Now().Add(time.Duration(len(reloads)+1) * time.Second)
		_ = os.Chtimes(cf, later, later)
		_ = os.Chtimes(kf, later, later)
	}
	// A broken pair keeps the old certificate.
	if err := os.WriteFile(cf, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	bump()
	if serial(t, r) != 1 || len(reloads) != 1 || reloads[0] == nil {
		t.Errorf("broken pair: reloads %v", reloads)
	}
	writePair(t, cf, kf, 2)
	bump()
	if serial(t, r) != 2 || len(reloads) != 2 || reloads[1] != nil {
		t.Errorf("renewed pair: reloads %v", reloads)
	}
	if _, err := New(filepath.Join(dir, "missing"), kf, nil); err == nil {
		t.Error("missing file accepted")
	}
}
