package vaulttest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/credsign/credsign/internal/testing/testutil"
)

func TestBinary(t *testing.T) {
	dir := t.TempDir()
	cached := filepath.Join(dir, "bin", "vault-"+Version)
	explicit := filepath.Join(dir, "my-vault")
	for _, p := range []string{cached, explicit} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		bin     string
		cache   string
		want    string
		wantErr string
	}{
		{"VAULT_BIN", explicit, "", explicit, ""},
		{"VAULT_BIN missing", filepath.Join(dir, "nope"), "", "", "VAULT_BIN="},
		{"cache", "", dir, cached, ""},
		{"nothing", "", t.TempDir(), "", "nothing at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvBin, tc.bin)
			t.Setenv(EnvCache, tc.cache)
			t.Setenv("PATH", t.TempDir()) // no vault on PATH
			got, err := Binary()
			if testutil.WantErr(t, "Binary()", err, tc.wantErr) {
				return
			}
			if got != tc.want {
				t.Fatalf("Binary() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	write := func() {
		t.Helper()
		if _, err := s.Client(t).KVv2("secret").Put(t.Context(), "probe", map[string]any{"a": "b"}); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	write()
	s.Seal(t)
	if _, err := s.Client(t).KVv2("secret").Get(t.Context(), "probe"); err == nil {
		t.Fatal("read from a sealed server succeeded")
	}
	s.Unseal(t)
	write()
	addr := s.Addr
	s.Restart(t)
	if s.Addr != addr {
		t.Fatalf("restart moved the server from %s to %s", addr, s.Addr)
	}
	write()
	s.Seal(t) // the restarted server has a new unseal key
	s.Unseal(t)
	write()
	s.Stop()
	s.Stop()
	if _, err := s.Client(t).Sys().Health(); err == nil {
		t.Fatal("stopped server answers")
	}
}
