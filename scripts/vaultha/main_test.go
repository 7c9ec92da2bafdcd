package main

import (
	"bytes"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	ok := func(s float64, srv int) result {
		return result{at: at(s), server: srv, ok: true, status: 200, latency: time.Millisecond}
	}
	bad := func(s float64, srv, status int) result { return result{at: at(s), server: srv, status: status} }
	o := options{servers: []string{"a", "b"}, duration: 10 * time.Second}

	tests := []struct {
		name        string
		kill        float64 // seconds after start; <0: never
		results     []result
		issued      int
		errors      int
		firstErr    float64
		lastErr     float64
		gaps        []float64
		recovery    float64
		errByStatus map[string]int
	}{
		{
			name:     "failover with errors on both replicas",
			kill:     2,
			results:  []result{ok(1, 0), ok(1, 1), ok(2.5, 0), bad(3, 0, 503), bad(3.5, 1, 0), bad(4, 1, 503), ok(6, 0), ok(7, 1), ok(9.5, 0), ok(9.5, 1)},
			issued:   7,
			errors:   3,
			firstErr: 1, lastErr: 2,
			gaps:        []float64{3.5, 6},
			recovery:    5, // b's first success after the last failure, at 7 s
			errByStatus: map[string]int{"503": 2, "0": 1},
		},
		{
			name:     "no error after the kill",
			kill:     2,
			results:  []result{ok(1, 0), ok(1, 1), ok(3, 0), ok(4, 1), ok(9, 0), ok(9, 1)},
			issued:   6,
			firstErr: -1, lastErr: -1,
			gaps:        []float64{6, 5},
			recovery:    2, // b issued at 4 s
			errByStatus: map[string]int{},
		},
		{
			name:     "never recovered",
			kill:     2,
			results:  []result{ok(1, 0), ok(1, 1), ok(3, 0), bad(4, 1, 503), bad(9, 1, 503)},
			issued:   3,
			errors:   2,
			firstErr: 2, lastErr: 7,
			gaps:        []float64{7, 9},
			recovery:    -1,
			errByStatus: map[string]int{"503": 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var killAt time.Time
			if tc.kill >= 0 {
				killAt = at(tc.kill)
			}
			r := summarize(o, start, killAt, tc.results)
			near := func(got, want float64) bool { return got-want < 1e-6 && want-got < 1e-6 }
			if r.Issued != tc.issued || r.Errors != tc.errors || r.Requests != len(tc.results) {
				t.Errorf("issued %d errors %d requests %d, want %d %d %d", r.Issued, r.Errors, r.Requests, tc.issued, tc.errors, len(tc.results))
			}
			if !near(r.FirstErrorAfterKill, tc.firstErr) || !near(r.LastErrorAfterKill, tc.lastErr) {
				t.Errorf("errors after kill %v..%v, want %v..%v", r.FirstErrorAfterKill, r.LastErrorAfterKill, tc.firstErr, tc.lastErr)
			}
			for i, g := range tc.gaps {
				if !near(r.LongestGap[i], g) {
					t.Errorf("longest gap of server %d = %v, want %v", i, r.LongestGap[i], g)
				}
			}
			if !near(r.Recovery, tc.recovery) {
				t.Errorf("recovery %v, want %v", r.Recovery, tc.recovery)
			}
			if len(r.ErrorsByStatus) != len(tc.errByStatus) {
				t.Errorf("errors by status %v, want %v", r.ErrorsByStatus, tc.errByStatus)
			}
			for k, v := range tc.errByStatus {
				if r.ErrorsByStatus[k] != v {
					t.Errorf("errors by status %v, want %v", r.ErrorsByStatus, tc.errByStatus)
				}
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	d := []time.Duration{5 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
	if got := quantile(d, 0.5); got != "3ms" {
		t.Errorf("p50 = %s, want 3ms", got)
	}
	if got := quantile(d, 0.99); got != "4ms" { // index int(0.99*4) = 3
		t.Errorf("p99 = %s, want 4ms", got)
	}
	if got := quantile(nil, 0.5); got != "" {
		t.Errorf("quantile of nothing = %q", got)
	}
}

func TestUsage(t *testing.T) {
	t.Setenv("CREDSIGN_ADMIN_TOKEN", "")
	var out, errb bytes.Buffer
	if code := run([]string{"-servers", "http://127.0.0.1:1"}, &out, &errb); code != exitUsage {
		t.Fatalf("without an admin token: exit %d, want %d", code, exitUsage)
	}
	if code := run([]string{"-bogus"}, &out, &errb); code != exitUsage {
		t.Fatalf("unknown flag: exit %d, want %d", code, exitUsage)
	}
}
