// Package agenttest helps the tests of programs that embed the agent: a
// Recorder collects the agent's events and waits for them.
package agenttest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/agent"
)

// Recorder records agent events; pass its Add as agent.Config.OnEvent.
type Recorder struct {
	mu   sync.Mutex
	list []agent.Event
	ch   chan struct{}
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{ch: make(chan struct{}, 1)} }

// Add records e. It is safe for concurrent use.
func (r *Recorder) Add(e agent.Event) {
	r.mu.Lock()
	r.list = append(r.list, e)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

// All returns the events of kind k, oldest first.
func (r *Recorder) All(k agent.EventKind) []agent.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []agent.Event
	for _, e := range r.list {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// Count returns how many events of kind k were recorded.
func (r *Recorder) Count(k agent.EventKind) int { return len(r.All(k)) }

// First returns the first event of kind k.
func (r *Recorder) First(k agent.EventKind) (agent.Event, bool) {
	if all := r.All(k); len(all) > 0 {
		return all[0], true
	}
	return agent.Event{}, false
}

// Wait blocks until n events of kind k were recorded, failing t when ctx ends first.
func (r *Recorder) Wait(ctx context.Context, t testing.TB, k agent.EventKind, n int) {
	t.Helper()
	for r.Count(k) < n {
		select {
		case <-r.ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %d %s events: got %d", n, k, r.Count(k))
		}
	}
}

// Run starts an agent with cfg and stops it when the test ends, failing t if
// it does not stop within 30 s or stops with an error other than the
// cancellation.
func Run(t testing.TB, cfg agent.Config) *agent.Agent {
	t.Helper()
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("agent stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop")
		}
	})
	return a
}

// Context returns a context that ends after d or with the test.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Broker is what a broker emulator (cloudemu.Emulator) tells of the
// CONNECTs it saw since a time: how many it refused and accepted.
type Broker interface {
	AttemptsSince(since time.Time) (refused, accepted int)
}

// BacksOff watches b for 3 s (or until ctx ends) while an agent with
// back-off 200 ms to 1 s retries credentials the broker refuses, and fails
// t if the broker ever accepted a CONNECT or if the agent did not retry
// with back-off: with ceilings 0.2, 0.4, 0.8, 1, 1 … s and full jitter
// (half that on average) there are about 8 CONNECTs in 3 s, 20 would take
// luck below one in a million, and a tight loop makes hundreds.
func BacksOff(ctx context.Context, t testing.TB, b Broker) {
	t.Helper()
	from := time.Now()
	select {
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
	}
	n, _ := b.AttemptsSince(from)
	if _, accepted := b.AttemptsSince(time.Time{}); accepted > 0 {
		t.Fatal("the broker accepted a CONNECT with credentials it should refuse")
	}
	if n < 1 || n > 20 {
		t.Fatalf("%d CONNECT attempts in 3s: want back-off, 1 to 20", n)
	}
}
