package agent

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{4, 500 * time.Millisecond, time.Second},
		{60, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for range 50 {
			if d := b.Delay(tt.n); d < tt.min || d > tt.max {
				t.Fatalf("Delay(%d) = %s, want in [%s, %s]", tt.n, d, tt.min, tt.max)
			}
		}
	}
	if d := (Backoff{}).Delay(0); d < 500*time.Millisecond || d > time.Second {
		t.Fatalf("default first delay %s, want 0.5–1s", d)
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
	if !(Credentials{}).RefreshAt().IsZero() {
		t.Fatal("no refreshAfter should mean never")
	}
}
