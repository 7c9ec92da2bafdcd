package logbuf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// syncBuf is a bytes.Buffer safe for the flusher and the test at once,
// counting the writes it receives.
type syncBuf struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuf) snapshot() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String(), s.writes
}

func TestWriter(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		// batched: lines wait for the interval, and many lines go out in
		// few writes.
		batched bool
	}{
		{"batched", 30 * time.Millisecond, true},
		{"at once", 0, false},
		{"negative is at once", -time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := &syncBuf{}
			w := New(dst, tt.interval)
			const goroutines, lines = 8, 200
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range lines {
						fmt.Fprintf(w, "{\"g\":%d,\"i\":%d,\"pad\":%q}\n", g, i, strings.Repeat("x", 40))
					}
				})
			}
			wg.Wait()
			got, writes := dst.snapshot()
			if tt.batched && (got != "" && writes > goroutines*lines/10) {
				t.Errorf("%d writes for %d lines before the interval: not batched", writes, goroutines*lines)
			}
			if !tt.batched && writes != goroutines*lines {
				t.Errorf("%d writes for %d lines, want one each", writes, goroutines*lines)
			}
			if tt.batched { // every line after an interval or a few; the checks below say what is missing
				_ = testutil.Poll(context.Background(), 2*time.Second, func() error {
					if got, _ = dst.snapshot(); strings.Count(got, "\n") < goroutines*lines {
						return errors.New("lines missing")
					}
					return nil
				})
			}
			// Every line whole, each goroutine's lines in order.
			next := make([]int, goroutines)
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				var g, i int
				if _, err := fmt.Sscanf(line, "{\"g\":%d,\"i\":%d,", &g, &i); err != nil || !strings.HasSuffix(line, strings.Repeat("x", 40)+"\"}") {
					t.Fatalf("torn line %q", line)
				}
				if i != next[g] {
					t.Fatalf("goroutine %d: line %d after %d", g, i, next[g]-1)
				}
				next[g]++
			}
			for g, n := range next {
				if n != lines {
					t.Errorf("goroutine %d: %d lines arrived, want %d", g, n, lines)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCloseFlushes: Close writes out what waits, however long the
// interval, and writes after Close go out at once.
func TestCloseFlushes(t *testing.T) {
	dst := &syncBuf{}
	w := New(dst, time.Hour)
	fmt.Fprintln(w, "before close")
	if got, _ := dst.snapshot(); got != "" {
		t.Fatalf("written before the interval: %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "after close")
	if got, _ := dst.snapshot(); got != "before close\nafter close\n" {
		t.Fatalf("got %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// BenchmarkWriter compares a batched writer with writing each line at once,
// to a file (a write system call per line), in the same process.
func BenchmarkWriter(b *testing.B) {
	line := []byte(`{"level":"info","requestId":"dc7ncrpksdud325s8d5g","method":"POST","path":"/v1/devices/d1/credentials","status":200}` + "\n")
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"batched", 50 * time.Millisecond}, {"at-once", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			f, err := os.CreateTemp(b.TempDir(), "log")
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			w := New(f, tc.interval)
			defer w.Close()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _ = w.Write(line)
				}
			})
		})
	}
}
