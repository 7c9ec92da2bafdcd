package e2e

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/testutil"
)

// Mosquitto is Debian's broker, started on a free loopback port.
type Mosquitto struct {
	Port int
	ca   *cloudemu.TestCA // nil for a plain listener
}

// MosquittoOptions configures StartMosquitto.
type MosquittoOptions struct {
	TLS bool // listen with TLS, with a certificate for 127.0.0.1 from a test CA
	// Refuse makes the broker refuse every CONNECT as not authorised
	// (CONNACK 5): anonymous clients are not allowed and no password file
	// is given.
	Refuse bool
}

func mosquittoBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	if os.Getenv("CREDSIGN_REQUIRE_MOSQUITTO") == "1" {
		t.Fatal("mosquitto is not installed and CREDSIGN_REQUIRE_MOSQUITTO=1: apt-get install -y mosquitto")
	}
	t.Skip("mosquitto is not installed (apt-get install -y mosquitto); set CREDSIGN_REQUIRE_MOSQUITTO=1 to fail instead")
	return ""
}

// StartMosquitto starts mosquitto for the test, which it skips when
// mosquitto is not installed (fails with CREDSIGN_REQUIRE_MOSQUITTO=1).
func StartMosquitto(t testing.TB, o MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := mosquittoBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir := t.TempDir()
	m := &Mosquitto{Port: port}
	conf := fmt.Sprintf("per_listener_settings false\nallow_anonymous %t\npersistence false\nlog_dest stderr\nlistener %d 127.0.0.1\n", !o.Refuse, port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else it drops to user mosquitto, who cannot read the test's files
	}
	if o.TLS {
		ca, err := cloudemu.NewTestCA()
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := ca.Issue("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"ca.pem": ca.CertPEM(), "cert.pem": cert, "key.pem": key} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		conf += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\n",
			filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		m.ca = ca
	}
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &testutil.SyncBuffer{}
	cmd := exec.Command(bin, "-c", cf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			_ = c.Close()
			return m
		}
		select {
		case err := <-exited:
			t.Fatalf("mosquitto exited: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not listen on %d: %s", port, out.String())
		}
	}
}

// Roots trusts the broker's certificate; nil for a plain listener.
func (m *Mosquitto) Roots() *x509.CertPool {
	if m.ca == nil {
		return nil
	}
	return m.ca.Pool()
}

// CAPEM is the broker's CA certificate (PEM); nil for a plain listener.
func (m *Mosquitto) CAPEM() []byte {
	if m.ca == nil {
		return nil
	}
	return m.ca.CertPEM()
}
