package vaultstore

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/vaulttest"
	"github.com/credsign/credsign/secrets"
)

// BenchmarkGetDevice reads one device through the store (the cold path of
// an issuance on Vault), 64 callers at once, beside a bare GET of the same
// KV entry over a pooled net/http client, in the same process against the
// same Vault: their ratio is what the store adds to Vault's own read.
func BenchmarkGetDevice(b *testing.B) {
	srv := vaulttest.Start(b)
	cfg := Config{Address: srv.Addr, Token: srv.RootToken, Prefix: randomName("credsign/b-") + "/"}
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	d := secrets.Device{ID: "bench", Cloud: "azure", Params: map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "d"},
		Secret: "c2VjcmV0LWtleS0xMjM0NTY3ODkw", Labels: map[string]string{"site": "a"}}
	if _, err := s.PutDevice(ctx, d, -1); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(32) // 64 callers on 2 cores
	b.Run("store", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.GetDevice(ctx, "bench"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	url := strings.TrimRight(srv.Addr, "/") + "/v1/" + s.dataPath(devices.rel("bench"))
	b.Run("bare", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("X-Vault-Token", srv.RootToken)
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Errorf("GET: %s", res.Status)
					return
				}
			}
		})
	})
}
