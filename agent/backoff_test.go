package agent

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		n       int
		ceiling time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{4, time.Second},
		{60, time.Second},
	}
	for _, tt := range tests {
		if c := b.Ceiling(tt.n); c != tt.ceiling {
			t.Fatalf("Ceiling(%d) = %s, want %s", tt.n, c, tt.ceiling)
		}
		// Full jitter: anywhere in [0, ceiling], the lower half included.
		low := false
		for range 200 {
			d := b.Delay(tt.n)
			if d < 0 || d > tt.ceiling {
				t.Fatalf("Delay(%d) = %s, want in [0, %s]", tt.n, d, tt.ceiling)
			}
			low = low || d < tt.ceiling/2
		}
		if !low {
			t.Fatalf("Delay(%d): 200 waits, none below half the ceiling: not full jitter", tt.n)
		}
	}
	if c := (Backoff{}).Ceiling(0); c != time.Second {
		t.Fatalf("default first ceiling %s, want 1s", c)
	}
	if c := (Backoff{}).Ceiling(100); c != 2*time.Minute {
		t.Fatalf("default cap %s, want 2m", c)
	}
	top := Backoff{Initial: time.Second, Jitter: func(c time.Duration) time.Duration { return 2 * c }}
	if d := top.Delay(2); d != 4*time.Second {
		t.Fatalf("a Jitter beyond the ceiling gave %s, want the ceiling 4s", d)
	}
}

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

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"5", 5 * time.Second},
		{" 0 ", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
		{"-3", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
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
