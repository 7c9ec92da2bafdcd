package vaultstore

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/credsign/credsign/internal/testing/vaulttest"
	"github.com/credsign/credsign/secrets"
)

// TestListScanCost lists 6,000 devices on a real Vault with a filter that
// matches one of them, and counts the listing calls (one a page, one API
// request each) and the requests Vault received for them: one LIST a call
// and one read per record examined, at most ScanBudget a call. The proxy
// in front of Vault only counts; it changes nothing.
func TestListScanCost(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 6,000 devices to Vault")
	}
	srv := vaulttest.Start(t)
	target, err := url.Parse(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	var lists, reads atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	counter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "LIST" || r.URL.Query().Get("list") == "true":
			lists.Add(1)
		case r.Method == http.MethodGet:
			reads.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(counter.Close)
	cfg := baseConfig(srv, srv.RootToken)
	cfg.Address, cfg.Timeout = counter.URL, 30*time.Second
	s := newStore(t, cfg)
	const n, rare = 6_000, 4_007
	ctx := context.Background()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			d := secrets.Device{ID: fmt.Sprintf("dev-%06d", i), Cloud: "aliyun", Secret: "aliyun-secret",
				Params: map[string]any{"productKey": "pk", "deviceName": fmt.Sprintf("dev-%06d", i)}, Labels: map[string]string{"site": "sz"}}
			if i == rare {
				d.Labels["rare"] = "yes"
			}
			_, err := s.PutDevice(gctx, d, 0)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	lists.Store(0)
	reads.Store(0)
	var (
		found []string
		calls int
		mu    sync.Mutex
	)
	opts := secrets.ListOptions{Labels: map[string]string{"rare": "yes"}}
	start := time.Now()
	for {
		page, err := s.ListDevices(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		calls++
		mu.Lock()
		for _, d := range page.Devices {
			found = append(found, d.ID)
		}
		mu.Unlock()
		if page.Next != "" && len(page.Devices) == 0 && !page.Partial {
			t.Fatalf("call %d: an empty page with a next and no Partial", calls)
		}
		if page.Scanned > ScanBudget {
			t.Fatalf("call %d examined %d records, budget %d", calls, page.Scanned, ScanBudget)
		}
		if page.Next == "" {
			break
		}
		opts.After = page.Next
	}
	t.Logf("1 of %d devices on Vault: %d listing calls, %d Vault LISTs, %d Vault reads, %v",
		n, calls, lists.Load(), reads.Load(), time.Since(start))
	if !slices.Equal(found, []string{fmt.Sprintf("dev-%06d", rare)}) || calls != (n+ScanBudget-1)/ScanBudget {
		t.Fatalf("found %v in %d calls, want dev-%06d in %d", found, calls, rare, (n+ScanBudget-1)/ScanBudget)
	}
	if lists.Load() != int64(calls) || reads.Load() != n {
		t.Fatalf("Vault got %d LISTs and %d reads, want %d and %d", lists.Load(), reads.Load(), calls, n)
	}
}

// TestDeviceWithoutSecretVersion reads a device record written before
// secret versions existed (as `vault kv put` or an older credsign left it):
// it reads as secret version 1, and its first rotation makes it 2.
func TestDeviceWithoutSecretVersion(t *testing.T) {
	srv := vaulttest.Start(t)
	cfg := baseConfig(srv, srv.RootToken)
	s := newStore(t, cfg)
	ctx := context.Background()
	old := map[string]any{"id": "old", "cloud": "aliyun", "params": map[string]any{"productKey": "pk", "deviceName": "old"},
		"secret": "old-secret", "createdAt": "2026-01-02T03:04:05Z", "updatedAt": "2026-01-02T03:04:05Z"}
	if _, err := srv.Client(t).KVv2("secret").Put(ctx, cfg.Prefix+"devices/old", old); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDevice(ctx, "old")
	if err != nil || d.SecretVersion != 1 || d.PreviousSecret != "" || d.SecretRotatedAt != nil {
		t.Fatalf("GetDevice: secretVersion %d, %v", d.SecretVersion, err)
	}
	d.Secret = "new-secret"
	got, err := s.PutDevice(ctx, d, d.Version)
	if err != nil || got.SecretVersion != 2 || got.PreviousSecret != "old-secret" {
		t.Fatalf("first rotation: secretVersion %d, previous kept %t, %v", got.SecretVersion, got.PreviousSecret == "old-secret", err)
	}
}
