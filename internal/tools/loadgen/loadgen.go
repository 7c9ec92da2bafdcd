// Package loadgen drives a running credsign server with credential requests
// and, interleaved with them on the same server and connections, a baseline
// of GET /healthz, so that what is reported is a ratio measured at the same
// time on the same machine rather than a lone absolute figure.
package loadgen

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a run. Every loop is bounded by Rounds and Phase.
type Options struct {
	// Server is the base URL (http://127.0.0.1:8080).
	Server string
	// AdminToken creates a provisioner token (or use ProvisionerToken).
	AdminToken string
	// ProvisionerToken registers devices and mints their tokens.
	ProvisionerToken string
	// Devices is how many devices of each cloud to register (default 5).
	Devices int
	// Concurrency is the number of workers (default 8).
	Concurrency int
	// Phase is how long each measured phase lasts (default 2s).
	Phase time.Duration
	// Rounds is how many baseline/credentials pairs are run (default 3).
	Rounds int
	// Client is the HTTP client (default: keep-alive client sized for Concurrency).
	Client *http.Client
}

// Stats describe one kind of request over all rounds.
type Stats struct {
	Requests  int           `json:"requests"`
	Errors    int           `json:"errors"`
	PerSecond float64       `json:"perSecond"`
	P50       time.Duration `json:"p50"`
	P99       time.Duration `json:"p99"`
	// FirstError says what the first failed request got (a status or a
	// transport error; never a token), when one failed.
	FirstError string `json:"firstError,omitempty"`
}

// Report is the result of a run.
type Report struct {
	Baseline    Stats `json:"baseline"`    // GET /healthz
	Credentials Stats `json:"credentials"` // POST /v1/devices/{id}/credentials with device tokens
	// ThroughputRatio is Credentials.PerSecond / Baseline.PerSecond.
	ThroughputRatio float64 `json:"throughputRatio"`
	// P50Ratio is Credentials.P50 / Baseline.P50.
	P50Ratio float64 `json:"p50Ratio"`
}

// String formats r for people.
func (r Report) String() string {
	return fmt.Sprintf("baseline GET /healthz:        %8.0f req/s  p50 %-10s p99 %-10s errors %d\n"+
		"POST .../credentials:         %8.0f req/s  p50 %-10s p99 %-10s errors %d\n"+
		"credentials/baseline: throughput x%.2f, p50 latency x%.2f\n",
		r.Baseline.PerSecond, r.Baseline.P50, r.Baseline.P99, r.Baseline.Errors,
		r.Credentials.PerSecond, r.Credentials.P50, r.Credentials.P99, r.Credentials.Errors,
		r.ThroughputRatio, r.P50Ratio)
}

type target struct {
	method, path, token string
}

// Run registers devices of every cloud, then measures.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Devices <= 0 {
		o.Devices = 5
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Phase <= 0 {
		o.Phase = 2 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}}
	}
	o.Server = strings.TrimRight(o.Server, "/")
	c := &caller{o: o}
	if o.ProvisionerToken == "" {
		var tok struct{ Token string }
		if err := c.do(ctx, http.MethodPost, "/v1/tokens", o.AdminToken, map[string]string{"role": "provisioner"}, &tok); err != nil {
			return Report{}, fmt.Errorf("loadgen: create provisioner token: %w", err)
		}
		c.o.ProvisionerToken = tok.Token
	}
	creds, cleanup, err := c.register(ctx)
	defer cleanup()
	if err != nil {
		return Report{}, err
	}
	var base, cred []time.Duration
	var baseErr, credErr int
	var baseTime, credTime time.Duration
	for range o.Rounds {
		lat, errs, took := c.phase(ctx, []target{{http.MethodGet, "/healthz", ""}})
		base, baseErr, baseTime = append(base, lat...), baseErr+errs, baseTime+took
		lat, errs, took = c.phase(ctx, creds)
		cred, credErr, credTime = append(cred, lat...), credErr+errs, credTime+took
		if ctx.Err() != nil {
			return Report{}, ctx.Err()
		}
	}
	r := Report{Baseline: summarize(base, baseErr, baseTime), Credentials: summarize(cred, credErr, credTime)}
	if r.Baseline.PerSecond > 0 {
		r.ThroughputRatio = r.Credentials.PerSecond / r.Baseline.PerSecond
	}
	if r.Baseline.P50 > 0 {
		r.P50Ratio = float64(r.Credentials.P50) / float64(r.Baseline.P50)
	}
	return r, nil
}

func summarize(lat []time.Duration, errs int, took time.Duration) Stats {
	s := Stats{Requests: len(lat) + errs, Errors: errs}
	if took > 0 {
		s.PerSecond = float64(len(lat)) / took.Seconds()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		s.P50 = lat[len(lat)/2]
		s.P99 = lat[len(lat)*99/100]
	}
	return s
}

type caller struct{ o Options }

// testDevices are one device document per cloud; secrets are generated, not real.
func testDevices(i int) map[string]map[string]any {
	key := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("load-test-key-%04d-0123456789abc", i)))
	return map[string]map[string]any{
		"aliyun":  {"cloud": "aliyun", "params": map[string]any{"productKey": "a1LoadTest", "deviceName": fmt.Sprintf("dev%d", i)}, "secret": fmt.Sprintf("load-secret-%d", i)},
		"tencent": {"cloud": "tencent", "params": map[string]any{"productId": "LOADTEST01", "deviceName": fmt.Sprintf("dev%d", i)}, "secret": key},
		"huawei":  {"cloud": "huawei", "params": map[string]any{"deviceId": fmt.Sprintf("loadtest_dev%d", i)}, "secret": fmt.Sprintf("load-secret-%d", i)},
		"azure":   {"cloud": "azure", "params": map[string]any{"hubHost": "loadtest.azure-devices.net", "deviceId": fmt.Sprintf("dev%d", i)}, "secret": key},
	}
}

// register creates the devices and their tokens; cleanup deletes the devices.
func (c *caller) register(ctx context.Context) ([]target, func(), error) {
	var ids []string
	cleanup := func() {
		for _, id := range ids {
			_ = c.do(context.Background(), http.MethodDelete, "/v1/devices/"+id, c.o.ProvisionerToken, nil, nil)
		}
	}
	var out []target
	for i := range c.o.Devices {
		for cloud, doc := range testDevices(i) {
			id := fmt.Sprintf("loadgen-%s-%d", cloud, i)
			if err := c.do(ctx, http.MethodPut, "/v1/devices/"+id, c.o.ProvisionerToken, doc, nil); err != nil {
				return nil, cleanup, fmt.Errorf("loadgen: register %s: %w", id, err)
			}
			ids = append(ids, id)
			var tok struct{ Token string }
			if err := c.do(ctx, http.MethodPost, "/v1/devices/"+id+"/tokens", c.o.ProvisionerToken, nil, &tok); err != nil {
				return nil, cleanup, fmt.Errorf("loadgen: device token for %s: %w", id, err)
			}
			out = append(out, target{http.MethodPost, "/v1/devices/" + id + "/credentials", tok.Token})
		}
	}
	return out, cleanup, nil
}

// phase runs Concurrency workers over targets for one Phase.
func (c *caller) phase(ctx context.Context, targets []target) ([]time.Duration, int, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Phase)
	defer cancel()
	start := time.Now()
	all, errs, _ := workers(c.o.Concurrency, func(w int, ok func(time.Time), failed func(error)) {
		for i := w; ctx.Err() == nil; i++ {
			t := targets[i%len(targets)]
			t0 := time.Now()
			err := c.do(ctx, t.method, t.path, t.token, nil, nil)
			switch {
			case ctx.Err() != nil:
				return // the phase ended mid-request: count nothing
			case err != nil:
				failed(err)
			default:
				ok(t0)
			}
		}
	})
	return all, errs, time.Since(start)
}

// workers runs n workers, each calling ok with the start of every request
// that succeeded and failed with the error of every one that did not, and
// gathers their latencies, error counts and the first error.
func workers(n int, work func(w int, ok func(time.Time), failed func(error))) ([]time.Duration, int, error) {
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	var first error
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			bad := 0
			var mine error
			work(w, func(t0 time.Time) { lat = append(lat, time.Since(t0)) }, func(err error) {
				bad++
				if mine == nil {
					mine = err
				}
			})
			mu.Lock()
			all, errs = append(all, lat...), errs+bad
			if first == nil {
				first = mine
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, errs, first
}

// do sends one request and decodes a 2xx JSON answer into out (if not nil).
func (c *caller) do(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.o.Server+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var p struct{ Title, Detail string }
		_ = json.Unmarshal(data, &p)
		return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, p.Title, p.Detail)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return errors.Join(fmt.Errorf("%s %s: decode answer", method, path), err)
		}
	}
	return nil
}
