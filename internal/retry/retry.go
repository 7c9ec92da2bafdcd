// Package retry paces retries: exponential back-off with full jitter, and
// the server's Retry-After header (RFC 9110 §10.2.3). The agent, the
// registration client and the service all retry through it; it imports
// nothing of credsign, so the agent can link it without server code.
package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff is exponential back-off with full jitter: the wait before retry
// number n is a random duration in [0, c] where the ceiling c is
// min(Max, Initial·2ⁿ).
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

// Sleep waits for d or until ctx is done, then returning ctx's cause.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// maxAfter bounds a Retry-After in seconds, so that a huge value cannot
// overflow a time.Duration (about 68 years).
const maxAfter = 1 << 31

// ParseAfter reads a Retry-After header (RFC 9110 §10.2.3): delay seconds
// (a non-negative decimal integer) or an HTTP date (any of the three forms
// of §5.6.7), relative to now. It reports false when the header is absent
// or malformed; a date in the past is a zero wait.
func ParseAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if h[0] >= '0' && h[0] <= '9' {
		n, err := strconv.ParseUint(h, 10, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
				return 0, false
			}
			n = maxAfter
		}
		return time.Duration(min(n, maxAfter)) * time.Second, true
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxAfter*time.Second), true
}
