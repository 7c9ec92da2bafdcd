// Package ratelimit limits requests per API token with token buckets.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter keeps one token bucket per key (a token ID). A nil *Limiter
// allows everything.
type Limiter struct {
	limit rate.Limit
	burst int
	// idle is how long an unused bucket takes to refill; buckets idle longer
	// are dropped, since a new one would be identical.
	idle time.Duration

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

// New returns a limiter allowing perMinute requests a minute per key with
// bursts of burst. It returns nil (no limit) when perMinute is not positive.
func New(perMinute float64, burst int) *Limiter {
	if perMinute <= 0 {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	limit := rate.Limit(perMinute / 60)
	idle := time.Duration(float64(burst) / float64(limit) * float64(time.Second))
	return &Limiter{limit: limit, burst: burst, idle: idle + time.Minute, buckets: map[string]*bucket{}}
}

// Allow reports whether key may make a request at now; when not, it also
// returns how long to wait, rounded up to whole seconds (at least one).
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.lastSeen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, time.Duration(math.Ceil(d.Seconds())) * time.Second
	}
	return true, 0
}

// sweep drops buckets that have been idle long enough to be full again.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < l.idle {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.lastSeen) > l.idle {
			delete(l.buckets, k)
		}
	}
}
