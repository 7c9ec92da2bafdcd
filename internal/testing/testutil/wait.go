package testutil

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// How often Poll and WaitFor ask again.
const (
	pollEvery    = 10 * time.Millisecond
	waitForEvery = 50 * time.Millisecond // the pace the tests using WaitFor were written for
)

// Poll calls cond at once and then every 10ms until it returns nil, and
// returns nil; once timeout has passed it calls cond a last time and
// returns what that call returns, so that a condition is never judged by
// a call made before the timeout alone. When ctx ends first, Poll returns
// cond's last error. It is the one way the tests wait for something that
// gives no event to wait on (a store, a server or a process that is
// answered by being asked).
func Poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	return poll(ctx, timeout, pollEvery, cond)
}

// poll is Poll asking every so often.
func poll(ctx context.Context, timeout, every time.Duration, cond func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
}

// Eventually polls cond (see Poll) until it returns nil, and fails t with
// cond's last error if timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(context.Background(), timeout, cond); err != nil {
		t.Fatalf("not within %v: %v", timeout, err)
	}
}

// Holds turns a condition given as a bool into one for Poll and
// Eventually, whose error, while it does not hold, says that the test
// still waits for what.
func Holds(what string, cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errors.New("still waiting for " + what)
	}
}

// WaitFor polls cond every 50ms until it holds, and fails t if ctx ends
// first.
func WaitFor(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	if err := poll(ctx, math.MaxInt64, waitForEvery, Holds(what, cond)); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}
