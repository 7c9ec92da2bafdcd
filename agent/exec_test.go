package agent

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// counter issues credentials numbered 1, 2, … due for refresh after d.
func counter(d time.Duration) (Source, *atomic.Int32) {
	var n atomic.Int32
	return SourceFunc(func(context.Context) (Credentials, error) {
		i := n.Add(1)
		now := time.Now()
		return Credentials{Cloud: "aliyun", ClientID: "c" + strconv.Itoa(int(i)), Username: "u", Password: "p" + strconv.Itoa(int(i)),
			Host: "127.0.0.1", Port: 1883, IssuedAt: now, RefreshAfter: now.Add(d)}, nil
	}), &n
}

func TestExecRestartsChildWithFreshCredentials(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	src, _ := counter(300 * time.Millisecond)
	out := &testutil.SyncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Exec(ctx, ExecConfig{Source: src, Stdout: out, Backoff: Backoff{Initial: 10 * time.Millisecond},
			Argv: []string{"sh", "-c", `echo "$CREDSIGN_MQTT_CLIENT_ID $CREDSIGN_MQTT_PASSWORD $CREDSIGN_MQTT_HOST:$CREDSIGN_MQTT_PORT"; exec sleep 60`}})
	}()
	for !strings.Contains(out.String(), "c3 p3 127.0.0.1:1883") {
		select {
		case err := <-done:
			t.Fatalf("Exec returned %v; output %q", err, out.String())
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("child not restarted twice; output %q", out.String())
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec = %v, want context.Canceled", err)
	}
	// Each child saw its own triple, in the order fetched. (A child stopped
	// before its shell got to echo, on a loaded machine, prints nothing.)
	last := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var n, m int
		if _, err := fmt.Sscanf(line, "c%d p%d 127.0.0.1:1883", &n, &m); err != nil || n != m || n <= last {
			t.Fatalf("output %q: line %q out of order or mismatched", out.String(), line)
		}
		last = n
	}
}

func TestExecReturnsChildStatus(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	src, _ := counter(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := Exec(ctx, ExecConfig{Source: src, Argv: []string{"sh", "-c", "exit 3"}})
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Exec = %v, want exit status 3", err)
	}
}

// Exec backs off between failed refreshes like the rest of the agent: the
// waits double (1, 2, 4, 8 × Initial with the ceiling as jitter), and each
// is really waited.
func TestExecRefreshBacksOff(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	var mu sync.Mutex
	var calls []time.Time
	src := SourceFunc(func(context.Context) (Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		if len(calls) == 1 {
			now := time.Now()
			return Credentials{Cloud: "aliyun", ClientID: "c", Host: "127.0.0.1", Port: 1883, IssuedAt: now, RefreshAfter: now}, nil
		}
		return Credentials{}, &FetchError{Status: 503, Title: "Service Unavailable"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const initial = 40 * time.Millisecond
	var delays []time.Duration
	ev := make(chan Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- Exec(ctx, ExecConfig{Source: src, Argv: []string{"sleep", "60"}, OnEvent: func(e Event) { ev <- e },
			Backoff: Backoff{Initial: initial, Max: time.Minute, Jitter: func(c time.Duration) time.Duration { return c }}})
	}()
	for len(delays) < 4 {
		select {
		case e := <-ev:
			if e.Kind == EventBackoff {
				delays = append(delays, e.Delay)
			}
		case err := <-done:
			t.Fatalf("Exec returned %v", err)
		case <-ctx.Done():
			t.Fatalf("back-off events %v", delays)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec = %v, want context.Canceled", err)
	}
	for i, d := range delays {
		if want := initial << i; d != want {
			t.Fatalf("waits %v: want %v doubling", delays, initial)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// calls[1] is the first failed refresh; each later try came after its wait.
	for i := 2; i < len(calls) && i-2 < len(delays); i++ {
		if gap := calls[i].Sub(calls[i-1]); gap < delays[i-2] {
			t.Fatalf("try %d came %s after the last, before its back-off %s", i, gap, delays[i-2])
		}
	}
}
