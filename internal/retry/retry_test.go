package retry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
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
	if c := (Backoff{Initial: time.Minute, Max: time.Second}).Ceiling(3); c != time.Minute {
		t.Fatalf("a cap below the first ceiling gave %s, want the first ceiling 1m", c)
	}
	top := Backoff{Initial: time.Second, Jitter: func(c time.Duration) time.Duration { return 2 * c }}
	if d := top.Delay(2); d != 4*time.Second {
		t.Fatalf("a Jitter beyond the ceiling gave %s, want the ceiling 4s", d)
	}
	neg := Backoff{Initial: time.Second, Jitter: func(time.Duration) time.Duration { return -time.Second }}
	if d := neg.Delay(0); d != 0 {
		t.Fatalf("a negative Jitter gave %s, want 0", d)
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	if err := Sleep(t.Context(), time.Millisecond); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	why := errors.New("stopping")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(why)
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, why) {
		t.Fatalf("Sleep on a cancelled context = %v, want its cause", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep on a cancelled context waited")
	}
}

func TestParseAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999999999999999", maxAfter * time.Second, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true}, // IMF-fixdate
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second, true},     // obsolete RFC 850
		{now.Add(90 * time.Second).Format(time.ANSIC), 90 * time.Second, true},      // obsolete asctime
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},                    // past: now
		{"Fri, 02 Jan 2026 03:05:35 +0100", 0, false},                               // not GMT
	}
	for _, tc := range cases {
		got, ok := ParseAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-5", " 7", "Wed, 21 Oct 2015 07:28:00 GMT", "Wednesday, 21-Oct-15 07:28:00 GMT", "Wed Oct 21 07:28:00 2015", "99999999999999999999", ""} {
		f.Add(s)
	}
	now := time.Date(2015, 10, 21, 7, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, h string) {
		d, ok := ParseAfter(h, now)
		if d < 0 || d > maxAfter*time.Second || (!ok && d != 0) {
			t.Fatalf("ParseAfter(%q) = %v, %v", h, d, ok)
		}
	})
}
