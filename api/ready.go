package api

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/credsign/credsign/service"
)

// DefaultReadyCacheFor is how long /readyz answers from its last store
// ping: probes from every kubelet, load balancer and monitor then cost the
// store at most about one ping a second per replica.
const DefaultReadyCacheFor = time.Second

// readiness is the answer of /readyz: the store pinged at most once per
// cacheFor, concurrent callers sharing one ping, failures cached as well
// as successes (a flood of probes during an outage is not a flood of pings).
type readiness struct {
	ping     func(context.Context) (service.Health, error)
	now      func() time.Time
	cacheFor time.Duration
	flight   singleflight.Group

	mu     sync.Mutex
	at     time.Time // when the last ping started; zero: none yet
	health service.Health
	err    error
}

// check returns the last answer if it is younger than cacheFor, else pings
// the store (once for all callers waiting) within readyTimeout.
func (r *readiness) check(ctx context.Context) (service.Health, error) {
	r.mu.Lock()
	if !r.at.IsZero() && r.now().Sub(r.at) < r.cacheFor {
		defer r.mu.Unlock()
		return r.health, r.err
	}
	r.mu.Unlock()
	// The ping is shared by every caller waiting for it, so one caller's
	// cancellation must not fail the others; readyTimeout bounds it.
	ch := r.flight.DoChan("ping", func() (any, error) {
		start := r.now()
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
		defer cancel()
		h, err := r.ping(pctx)
		r.mu.Lock()
		r.at, r.health, r.err = start, h, err
		r.mu.Unlock()
		return h, err
	})
	select {
	case res := <-ch:
		h, _ := res.Val.(service.Health)
		return h, res.Err
	case <-ctx.Done():
		return service.Health{}, ctx.Err()
	}
}
