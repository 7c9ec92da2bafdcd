package emutest

import (
	"crypto/tls"
	"testing"

	"github.com/credsign/credsign/internal/cloudemu"
)

// LoopbackTLS returns a throw-away CA (cloudemu.TestCA, the emulators')
// and a server TLS configuration with a certificate from it for localhost,
// 127.0.0.1 and ::1, for the servers a test starts on loopback; the CA is
// for the clients' trust (Pool, CertPEM).
func LoopbackTLS(t testing.TB) (*cloudemu.TestCA, *tls.Config) {
	t.Helper()
	ca, err := cloudemu.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ca.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return ca, cfg
}
