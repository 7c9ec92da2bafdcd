package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is exponential back-off with full jitter: the wait before retry
// number n is a random duration in [0, c] where the ceiling c is
// min(Max, Initial·2ⁿ). Every retry of the agent (fetching credentials,
// connecting, refreshing, Exec's refreshes) is paced by one.
type Backoff struct {
	Initial time.Duration // first ceiling; default 1s
	Max     time.Duration // cap on the ceiling; default 2m
	// Jitter picks the wait in [0, ceiling]; nil picks it uniformly at
	// random. Tests set it to return the ceiling.
	Jitter func(ceiling time.Duration) time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = 2 * time.Minute
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	return b
}

// Ceiling returns the longest wait before retry number n (0 for the first).
func (b Backoff) Ceiling(n int) time.Duration {
	b = b.withDefaults()
	d := b.Initial
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Delay returns the wait before retry number n (0 for the first retry).
func (b Backoff) Delay(n int) time.Duration {
	c := b.Ceiling(n)
	if b.Jitter != nil {
		return min(max(b.Jitter(c), 0), c)
	}
	return rand.N(c + 1)
}

// retries paces a run of consecutive failures: after the n-th it says to
// wait Backoff.Delay(n), or the server's Retry-After when that is longer.
type retries struct {
	b Backoff
	n int
}

// next returns how long to wait after err, and counts it.
func (r *retries) next(err error) time.Duration {
	d := r.b.Delay(r.n)
	r.n++
	var fe *FetchError
	if errors.As(err, &fe) && fe.RetryAfter > d {
		d = fe.RetryAfter
	}
	return d
}

// reset starts the back-off over, after a success.
func (r *retries) reset() { r.n = 0 }

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
