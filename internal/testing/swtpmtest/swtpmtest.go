// Package swtpmtest runs Debian's swtpm, a real software TPM 2.0, for tests:
// in socket mode on loopback ports, its state in a temporary directory,
// optionally manufactured by swtpm_setup with an endorsement key (EK)
// certificate from swtpm_localca, a local CA of the test's own.
//
// Without swtpm (apt-get install swtpm swtpm-tools) Start skips the test,
// unless CREDSIGN_REQUIRE_TPM=1 (as in CI), in which case it fails it.
package swtpmtest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// EnvRequire set to "1" makes a missing swtpm fail the test instead of
// skipping it.
const EnvRequire = "CREDSIGN_REQUIRE_TPM"

// CA is a local CA that issues EK certificates (swtpm_localca's root and
// intermediate).
type CA struct {
	// Dir is swtpm_localca's state directory.
	Dir string
	// PEM holds the root and the intermediate that signs EK certificates.
	PEM []byte
}

// TPM is a running swtpm.
type TPM struct {
	// Addr is the data channel, host:port: raw TPM 2.0 commands.
	Addr string
	// StateDir holds the TPM's state.
	StateDir string
}

func need(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv(EnvRequire) == "1" {
				t.Fatalf("swtpmtest: %s not found and %s=1 (apt-get install swtpm swtpm-tools)", b, EnvRequire)
			}
			t.Skipf("swtpmtest: %s not found (apt-get install swtpm swtpm-tools)", b)
		}
	}
}

// NewCA makes a directory for a new local CA; swtpm_localca creates its
// keys when Manufacture first uses it.
func NewCA(t testing.TB) *CA {
	t.Helper()
	return &CA{Dir: t.TempDir()}
}

// Manufacture makes a TPM state, as a TPM maker does: an RSA 2048 and an
// ECC EK, with their certificates (issued by ca) and a platform
// certificate in the TPM's NV memory. It returns the state directory
// to Start.
func Manufacture(t testing.TB, ca *CA) string {
	t.Helper()
	need(t, "swtpm", "swtpm_setup", "swtpm_localca")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"localca.conf":    fmt.Sprintf("statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", ca.Dir),
		"localca.options": "--platform-manufacturer credsign\n--platform-version 1.0\n--platform-model test\n",
		"setup.conf":      fmt.Sprintf("create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %[1]s/localca.conf\ncreate_certs_tool_options = %[1]s/localca.options\nactive_pcr_banks = sha256\n", dir),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", state, "--create-ek-cert", "--create-platform-cert",
		"--config", filepath.Join(dir, "setup.conf"), "--logfile", filepath.Join(dir, "setup.log")).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "setup.log"))
		t.Fatalf("swtpm_setup: %v\n%s\n%s", err, out, log)
	}
	var bundle bytes.Buffer
	for _, f := range []string{"swtpm-localca-rootca-cert.pem", "issuercert.pem"} {
		b, err := os.ReadFile(filepath.Join(ca.Dir, f))
		if err != nil {
			t.Fatalf("swtpm_localca: %v", err)
		}
		if blk, _ := pem.Decode(b); blk == nil {
			t.Fatalf("swtpm_localca: %s is not PEM", f)
		} else if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			t.Fatalf("swtpm_localca: %s: %v", f, err)
		}
		bundle.Write(b)
	}
	ca.PEM = bundle.Bytes()
	return state
}

// Start runs swtpm on state (a Manufacture'd directory, or "" for a new,
// blank TPM without EK certificates) and stops it when the test ends.
func Start(t testing.TB, state string) *TPM {
	t.Helper()
	need(t, "swtpm")
	if state == "" {
		state = t.TempDir()
	}
	var lastErr error
	for range 5 {
		data, ctrl, err := freePorts()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("swtpm", "socket", "--tpm2",
			"--server", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(data),
			"--ctrl", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(ctrl),
			"--flags", "not-need-init,startup-clear", "--tpmstate", "dir="+state)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("swtpm: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(data))
		if err := waitListening(addr, done); err != nil {
			lastErr = fmt.Errorf("%w\n%s", err, out.String())
			_ = cmd.Process.Kill()
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
		})
		return &TPM{Addr: addr, StateDir: state}
	}
	t.Fatalf("swtpm did not start: %v", lastErr)
	return nil
}

// waitListening waits until addr accepts connections, or swtpm exits.
func waitListening(addr string, done <-chan error) error {
	var exited error // swtpm's exit ends the wait
	err := testutil.Poll(context.Background(), 10*time.Second, func() error {
		select {
		case err := <-done:
			exited = fmt.Errorf("swtpm exited: %v", err)
			return nil
		default:
		}
		// swtpm serves one connection at a time: the probe's is closed
		// at once, and swtpm then accepts the next.
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return fmt.Errorf("swtpm: %s not listening after 10s: %w", addr, err)
		}
		_ = c.Close()
		return nil
	})
	if exited != nil {
		return exited
	}
	return err
}

func freePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}
