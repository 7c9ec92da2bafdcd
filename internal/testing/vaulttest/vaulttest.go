// Package vaulttest runs a real HashiCorp Vault dev server on a loopback
// port for tests, and can stop, pause and restart it for fault tests.
//
// The vault binary is taken from $VAULT_BIN, else `vault` on $PATH, else the
// cache scripts/vault.sh fills:
// ${CREDSIGN_CACHE:-$HOME/.cache/credsign}/bin/vault-1.13.0. Without one,
// Start skips the test, unless CREDSIGN_REQUIRE_VAULT=1 (as in CI), in which
// case it fails it.
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// Version is the Vault release scripts/vault.sh builds.
const Version = "1.13.0"

// Environment variables the package reads.
const (
	EnvBin     = "VAULT_BIN"              // path of the vault binary
	EnvRequire = "CREDSIGN_REQUIRE_VAULT" // "1": no binary fails the test instead of skipping it
	EnvCache   = "CREDSIGN_CACHE"         // cache root of scripts/vault.sh
)

// startTimeout bounds how long a starting server may take to answer.
const startTimeout = 60 * time.Second

// Binary returns the path of the vault binary to run, or an error saying
// where it looked.
func Binary() (string, error) {
	if p := os.Getenv(EnvBin); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBin, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("vault"); err == nil {
		return p, nil
	}
	cache := os.Getenv(EnvCache)
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no %s, no vault on PATH, and no home directory: %w", EnvBin, err)
		}
		cache = filepath.Join(home, ".cache", "credsign")
	}
	p := filepath.Join(cache, "bin", "vault-"+Version)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no %s, no vault on PATH, nothing at %s", EnvBin, p)
	}
	return p, nil
}

// Server is a running (or stopped) Vault dev server.
type Server struct {
	// Addr is the server's URL, e.g. http://127.0.0.1:41234.
	Addr string
	// RootToken is the dev server's root token; it stays the same across
	// Restart.
	RootToken string

	bin    string
	listen string
	home   string
	log    string

	mu  sync.Mutex
	cmd *exec.Cmd
	// logStart is where the running server's output starts in the log.
	logStart int
}

// Start starts a dev server on a free loopback port and stops it when the
// test ends. It skips the test when no vault binary is found, unless
// CREDSIGN_REQUIRE_VAULT=1.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("vaulttest: %v (%s=1)", err, EnvRequire)
		}
		t.Skipf("no vault binary: run scripts/vault.sh or set VAULT_BIN (%v)", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	tok := make([]byte, 12)
	rand.Read(tok)
	dir := t.TempDir()
	s := &Server{
		Addr:      "http://" + port,
		RootToken: "root-" + hex.EncodeToString(tok),
		bin:       bin,
		listen:    port,
		home:      dir,
		log:       filepath.Join(dir, "vault.log"),
	}
	t.Cleanup(s.Stop)
	if err := s.start(); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return s
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	if fi, err := logf.Stat(); err == nil {
		s.logStart = int(fi.Size())
	}
	cmd := exec.Command(s.bin, "server", "-dev",
		"-dev-root-token-id="+s.RootToken,
		"-dev-listen-address="+s.listen,
		"-log-level=warn")
	cmd.Env = []string{"HOME=" + s.home, "PATH=" + os.Getenv("PATH"), "TMPDIR=" + s.home}
	cmd.Dir = s.home
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.cmd = cmd
	if err := waitReady(s.Addr); err != nil {
		s.kill()
		return fmt.Errorf("vault dev server on %s: %w\n%s", s.listen, err, s.logTail())
	}
	return nil
}

// waitReady polls sys/health until the server is unsealed and active.
func waitReady(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/v1/sys/health", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("sys/health: %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w", startTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// kill stops the process; s.mu must be held.
func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Stop kills the server (it does not get to shut down cleanly). Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
}

// Restart starts the server again on the same address with the same root
// token, stopping it first if it runs. A dev server keeps its data in
// memory, so it comes back empty, with a fresh `secret/` KV v2 mount.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("vaulttest: restart: %v", err)
	}
}

// Pause freezes the server with SIGSTOP: it keeps its port, the kernel still
// accepts connections, but nothing answers. Resume undoes it.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT)
}

func (s *Server) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		t.Fatalf("vaulttest: %v: server not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("vaulttest: %v: %v", sig, err)
	}
	if err := waitState(s.cmd.Process.Pid, sig == syscall.SIGSTOP); err != nil {
		t.Fatalf("vaulttest: %v: %v", sig, err)
	}
}

// Client returns a client of the server that authenticates with the root
// token, for test setup and for checking what a store wrote. It keeps no
// idle connections, so it leaves no goroutines behind for leak checks.
func (s *Server) Client(t testing.TB) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	if tr, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
		tr.DisableKeepAlives = true
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vaulttest: client: %v", err)
	}
	c.SetToken(s.RootToken)
	c.ClearNamespace()
	return c
}

// Seal seals the server, as an operator would: every request then fails
// with 503 until Unseal.
func (s *Server) Seal(t testing.TB) {
	t.Helper()
	if err := s.Client(t).Sys().Seal(); err != nil {
		t.Fatalf("vaulttest: seal: %v", err)
	}
}

// Unseal unseals the server with the unseal key the dev server printed.
func (s *Server) Unseal(t testing.TB) {
	t.Helper()
	key, err := s.unsealKey()
	if err != nil {
		t.Fatalf("vaulttest: unseal: %v", err)
	}
	st, err := s.Client(t).Sys().Unseal(key)
	if err != nil || st.Sealed {
		t.Fatalf("vaulttest: unseal: sealed=%v, %v", st != nil && st.Sealed, err)
	}
}

// unsealKey reads the unseal key from the dev server's banner, which may
// come out a little after the server answers.
func (s *Server) unsealKey() (string, error) {
	const label = "Unseal Key: "
	var key string
	err := testutil.Poll(context.Background(), 10*time.Second, func() error {
		b, err := os.ReadFile(s.log)
		if err != nil {
			return err
		}
		s.mu.Lock()
		b = b[min(s.logStart, len(b)):]
		s.mu.Unlock()
		if i := strings.LastIndex(string(b), label); i >= 0 {
			if k, _, ok := strings.Cut(string(b[i+len(label):]), "\n"); ok {
				key = strings.TrimSpace(k)
				return nil
			}
		}
		return errors.New("no unseal key in the dev server's output")
	})
	return key, err
}
