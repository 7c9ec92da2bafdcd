package cloud

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// testRSAPEM returns a PKCS #8 PEM RSA key.
func testRSAPEM(t testing.TB) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// TestParsePrivateKeyPEM: the parser both PEM readers share takes the three
// private key encodings (SEC 1 only when asked), and names each failure.
func TestParsePrivateKeyPEM(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	tests := []struct {
		name     string
		in       []byte
		ec       bool
		wantType string
		wantErr  error
	}{
		{"PKCS #8 RSA", []byte(testRSAPEM(t)), false, "PRIVATE KEY", nil},
		{"SEC 1 EC", ecPEM, true, "EC PRIVATE KEY", nil},
		{"SEC 1 EC not asked for", ecPEM, false, "EC PRIVATE KEY", errPEMType},
		{"no PEM", []byte("not a key"), true, "", errNoPEM},
		{"certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), true, "CERTIFICATE", errPEMType},
		{"garbage", []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), true, "RSA PRIVATE KEY", errPEMKey},
	}
	for _, tt := range tests {
		key, typ, err := parsePrivateKeyPEM(tt.in, tt.ec)
		if err != tt.wantErr || typ != tt.wantType || (err == nil) != (key != nil) {
			t.Errorf("%s: got key %T, type %q, err %v; want type %q, err %v", tt.name, key, typ, err, tt.wantType, tt.wantErr)
		}
	}
}
