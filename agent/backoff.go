package agent

import (
	"context"
	"errors"
	"time"

	"github.com/credsign/credsign/internal/retry"
)

// Backoff is exponential back-off with full jitter: the wait before retry
// number n is a random duration in [0, c] where the ceiling c is
// min(Max, Initial·2ⁿ); Initial defaults to 1s and Max to 2m. Every retry
// of the agent (fetching credentials, connecting, refreshing, Exec's
// refreshes) is paced by one.
type Backoff = retry.Backoff

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

// sleep waits for d or until ctx is done (retry.Sleep, named so because the
// retry loops call their pacer retry).
func sleep(ctx context.Context, d time.Duration) error { return retry.Sleep(ctx, d) }
