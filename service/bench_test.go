package service

import (
	"context"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/clouds"
)

// BenchmarkIssueWarm is one warm issuance through the service (token
// checked by its MAC, device from the cache, the recipe, audit and
// metrics), beside BenchmarkSignOnly, the recipe alone on the same device,
// run in the same process: their ratio is the service's overhead.
func BenchmarkIssueWarm(b *testing.B) {
	s, _ := newBenchService(b)
	benchIssue(b, s, "bench")
}

// benchIssue measures warm issuances for device id with its own token.
func benchIssue(b *testing.B, s *Service, id string) {
	ctx := context.Background()
	m, err := s.MintDeviceToken(ctx, adminCaller, id)
	if err != nil {
		b.Fatal(err)
	}
	header := "Bearer " + m.Text
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := s.Authenticate(ctx, header)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Issue(ctx, p, id, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignOnly is the baseline of BenchmarkIssueWarm.
func BenchmarkSignOnly(b *testing.B) {
	s, _ := newBenchService(b)
	d, err := s.store.GetDevice(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := clouds.Registry().Sign(cloud.Request{Cloud: d.Cloud, DeviceID: d.ID, Params: d.Params, Secret: d.Secret, Now: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
}

func newBenchService(b *testing.B) (*Service, *counting) {
	b.Helper()
	s, st := newService(b, Config{})
	if _, _, err := s.PutDevice(context.Background(), adminCaller, "bench", azure("c2VjcmV0LWtleS0xMjM0NTY3ODkw"), Precondition{}); err != nil {
		b.Fatal(err)
	}
	return s, st
}

// BenchmarkIssueWarmGroup is BenchmarkIssueWarm for an azure device of a
// group, without a secret of its own: the group from the cache and one
// more HMAC (the key derived from the group key). Its ratio to
// BenchmarkIssueWarm is what deriving costs.
func BenchmarkIssueWarmGroup(b *testing.B) {
	s, _ := newBenchService(b)
	ctx := context.Background()
	putLamps(b, s)
	if _, _, err := s.PutDevice(ctx, adminCaller, "bench-member", Document{Group: "lamps"}, Precondition{}); err != nil {
		b.Fatal(err)
	}
	benchIssue(b, s, "bench-member")
}
