package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(60, 2) // one a second, bursts of two
	now := time.Unix(1_800_000_000, 0)
	for i := 0; i < 2; i++ {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	ok, wait := l.Allow("a", now)
	if ok || wait != time.Second {
		t.Errorf("third request: ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Error("another key is limited too")
	}
	if ok, _ := l.Allow("a", now.Add(time.Second)); !ok {
		t.Error("not refilled after a second")
	}
	// Idle buckets are dropped.
	l.Allow("a", now.Add(time.Hour))
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets after sweep, want 1", len(l.buckets))
	}
}

func TestLimiterOff(t *testing.T) {
	l := New(0, 10)
	if l != nil {
		t.Fatal("New(0, …) should be nil (no limit)")
	}
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow("a", time.Now()); !ok {
			t.Fatal("a nil limiter refused")
		}
	}
}

func TestLimiterSlowRate(t *testing.T) {
	l := New(1, 1) // one a minute
	now := time.Unix(1_800_000_000, 0)
	l.Allow("a", now)
	if ok, wait := l.Allow("a", now.Add(15*time.Second)); ok || wait != 45*time.Second {
		t.Errorf("ok=%v wait=%v, want refused for 45s", ok, wait)
	}
}
