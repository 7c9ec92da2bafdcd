package agent

import (
	"errors"
	"testing"
	"time"
)

func TestRetriesHonourRetryAfterAndReset(t *testing.T) {
	r := retries{b: Backoff{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond, Jitter: func(c time.Duration) time.Duration { return c }}}
	plain := errors.New("connection refused")
	slow := &FetchError{Status: 503, RetryAfter: 5 * time.Second}
	steps := []struct {
		err  error
		want time.Duration
	}{
		{plain, 10 * time.Millisecond},
		{plain, 20 * time.Millisecond},
		{slow, 5 * time.Second}, // Retry-After longer than the back-off wins
		{plain, 80 * time.Millisecond},
		{plain, 80 * time.Millisecond}, // capped
		{&FetchError{Status: 429, RetryAfter: time.Millisecond}, 80 * time.Millisecond},
	}
	for i, s := range steps {
		if d := r.next(s.err); d != s.want {
			t.Fatalf("wait %d after %v = %s, want %s", i, s.err, d, s.want)
		}
	}
	r.reset()
	if d := r.next(plain); d != 10*time.Millisecond {
		t.Fatalf("after reset: %s, want the first step again", d)
	}
}

func TestRefreshAtStaysBeforeExpiry(t *testing.T) {
	issued := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	exp := issued.Add(time.Hour)
	c := Credentials{IssuedAt: issued, ExpiresAt: &exp, RefreshAfter: issued.Add(40 * time.Minute)}
	latest := c.RefreshAfter.Add(5 * time.Minute) // a quarter of the 20 minutes left
	for range 100 {
		if r := c.RefreshAt(); r.Before(c.RefreshAfter) || r.After(latest) {
			t.Fatalf("RefreshAt = %s, want in [%s, %s]", r, c.RefreshAfter, latest)
		}
	}
	// Baidu: a 4-second ttl inside its fixed 10-minute window refreshes
	// within half the time to refreshAfter, not a quarter of the window.
	bexp := issued.Add(10 * time.Minute)
	b := Credentials{IssuedAt: issued, ExpiresAt: &bexp, RefreshAfter: issued.Add(2 * time.Second)}
	for range 100 {
		if r := b.RefreshAt(); r.Before(b.RefreshAfter) || r.After(b.RefreshAfter.Add(time.Second)) {
			t.Fatalf("baidu RefreshAt = %s, want within a second of %s", r, b.RefreshAfter)
		}
	}
	if !(Credentials{}).RefreshAt().IsZero() {
		t.Fatal("no refreshAfter should mean never")
	}
}
