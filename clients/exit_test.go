package clients_test

import (
	"context"
	"errors"
	"os/exec"
	"testing"
)

// exitStatus waits for the client to end on its own, failing t with what
// if ctx ends first, and returns its exit status: 0 when it succeeded, -1
// when it did not exit with a status.
func (p *process) exitStatus(ctx context.Context, t *testing.T, what string) int {
	t.Helper()
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatal(what)
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		return -1
	}
	return ee.ExitCode()
}
