package vaultstore

import (
	"os/exec"
	"testing"
)

func execCommand(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	return exec.CommandContext(t.Context(), name, args...)
}
