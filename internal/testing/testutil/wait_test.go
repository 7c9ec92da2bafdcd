package testutil

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestPoll: Poll returns nil once the condition holds, and the condition's
// last error when it does not hold at the timeout or the context ends
// first.
func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(context.Background(), time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("a condition that holds at the third call: %v after %d calls", err, n)
	}
	last := 0
	err := Poll(context.Background(), 50*time.Millisecond, func() error { last++; return fmt.Errorf("call %d", last) })
	if err == nil || err.Error() != fmt.Sprintf("call %d", last) || last < 2 {
		t.Errorf("a condition that never holds: %v, want the last call's error", err)
	}
	// A call made once the timeout has passed decides, however long the
	// calls before it took (here the first takes all of the timeout).
	calls := 0
	if err := Poll(context.Background(), 0, func() error {
		if calls++; calls == 1 {
			return errors.New("asked too early")
		}
		return nil
	}); err != nil || calls != 2 {
		t.Errorf("a condition that holds at the timeout: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Poll(ctx, time.Hour, Holds("Godot", func() bool { return false })); err == nil || err.Error() != "still waiting for Godot" {
		t.Errorf("an ended context: %v", err)
	}
}
