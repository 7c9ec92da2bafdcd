package agent

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is exponential back-off with full jitter: the n-th wait is a
// random duration in [d/2, d] where d = min(Max, Initial·2ⁿ).
type Backoff struct {
	Initial time.Duration // first delay; default 1s
	Max     time.Duration // ceiling; default 2m
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

// Delay returns the wait before retry number n (0 for the first retry).
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	d := b.Initial
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + rand.N(d/2+1)
}

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
