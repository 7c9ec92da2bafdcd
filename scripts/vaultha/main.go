// Command vaultha drives credsign replicas through a Vault failover and
// reports what devices saw. scripts/vault-ha.sh starts the Vault Raft
// cluster and the replicas, then runs it.
//
// It registers devices through the first server, then for -duration sends
// credential requests for them at a steady -rate spread over every server,
// while one writer per device replaces a device of its own (a label carrying
// a sequence number) through the servers in turn. At -kill-after it runs -kill (a
// shell command: the script kills the active Vault node). At the end it
// reads every device back through each server: an acknowledged write whose
// sequence number is no longer there is a lost write. Output: one JSON
// report on stdout; exit 1 when a write was lost, the service never
// recovered, or more than -max-errors credential requests failed.
//
// It only talks to the servers it is given; vault-ha.sh gives it loopback
// addresses.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type options struct {
	servers   []string
	admin     string
	devices   int
	rate      float64
	duration  time.Duration
	killAfter time.Duration
	kill      string
	timeout   time.Duration
	maxErrors int
}

// result is one request's outcome.
type result struct {
	at      time.Time // when it was sent
	server  int
	ok      bool
	status  int // 0: no HTTP answer
	latency time.Duration
}

// Report is what vaultha prints.
type Report struct {
	Servers         []string       `json:"servers"`
	Requests        int            `json:"requests"`
	Issued          int            `json:"issued"`
	Errors          int            `json:"errors"`
	ErrorsByStatus  map[string]int `json:"errorsByStatus"`
	KilledAtSeconds float64        `json:"killedAtSeconds"` // since the load started
	// First and last failed request after the kill, in seconds after it;
	// -1 when none failed.
	FirstErrorAfterKill float64 `json:"firstErrorAfterKillSeconds"`
	LastErrorAfterKill  float64 `json:"lastErrorAfterKillSeconds"`
	// Longest stretch, per server, with no successful issuance (seconds).
	LongestGap []float64 `json:"longestGapSeconds"`
	// From the kill until every server issued again and nothing failed
	// after (seconds); -1 when the run ended before that.
	Recovery        float64  `json:"recoverySeconds"`
	P50Before       string   `json:"p50Before"`
	P99Before       string   `json:"p99Before"`
	P99After        string   `json:"p99After"`
	WritesAcked     int      `json:"writesAcknowledged"`
	WritesFailed    int      `json:"writesFailed"`
	WritesLost      int      `json:"writesLost"`
	LostWriteDetail []string `json:"lostWriteDetail,omitempty"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("vaultha", flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("servers", "", "comma-separated credsign base URLs (loopback)")
	fs.IntVar(&o.devices, "devices", 8, "devices registered (huawei recipe)")
	fs.Float64Var(&o.rate, "rate", 50, "credential requests per second, over all servers")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "length of the load")
	fs.DurationVar(&o.killAfter, "kill-after", 10*time.Second, "when to run -kill, from the start of the load")
	fs.StringVar(&o.kill, "kill", "", "shell command run at -kill-after (kills the active Vault node)")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Second, "per-request timeout")
	fs.IntVar(&o.maxErrors, "max-errors", -1, "fail when more credential requests than this fail (-1: no limit); 0 asserts issuance never stopped")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	o.admin = os.Getenv("CREDSIGN_ADMIN_TOKEN")
	if *servers == "" || o.admin == "" || o.rate <= 0 || o.devices < 1 {
		fmt.Fprintln(stderr, "vaultha: -servers, a positive -rate and -devices, and CREDSIGN_ADMIN_TOKEN are required")
		return exitUsage
	}
	o.servers = strings.Split(*servers, ",")
	r, err := drive(context.Background(), o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "vaultha: %v\n", err)
		return exitFail
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		fmt.Fprintf(stderr, "vaultha: %v\n", err)
		return exitFail
	}
	switch {
	case r.WritesLost > 0:
		fmt.Fprintf(stderr, "vaultha: %d acknowledged writes lost\n", r.WritesLost)
		return exitFail
	case r.Recovery < 0:
		fmt.Fprintln(stderr, "vaultha: the service did not recover before the end of the run")
		return exitFail
	case o.maxErrors >= 0 && r.Errors > o.maxErrors:
		fmt.Fprintf(stderr, "vaultha: %d credential requests failed, more than -max-errors %d\n", r.Errors, o.maxErrors)
		return exitFail
	}
	return exitOK
}

type client struct {
	http  *http.Client
	admin string
}

// do sends one request and returns the status (0 with an error when there
// was no answer) and the body.
func (c *client) do(ctx context.Context, method, url, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func device(i, seq int) map[string]any {
	return map[string]any{
		"cloud":  "huawei",
		"params": map[string]any{"deviceId": fmt.Sprintf("vaultha_%d", i)},
		"secret": fmt.Sprintf("vaultha-not-a-real-secret-%d", i),
		"labels": map[string]any{"seq": strconv.Itoa(seq)},
	}
}

func drive(ctx context.Context, o options, stderr io.Writer) (Report, error) {
	c := &client{
		http: &http.Client{Timeout: o.timeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		}},
		admin: o.admin,
	}
	// Register the devices and their tokens through the first server, and
	// the writers' devices (kept apart: a write drops a device from the
	// replicas' caches, and the issuance devices must show what the cache
	// does for devices nobody is changing).
	for i := range o.devices {
		id := fmt.Sprintf("vaultha-w-%d", i)
		if st, b, err := c.do(ctx, http.MethodPut, o.servers[0]+"/v1/devices/"+id, o.admin, device(1000+i, 0)); err != nil || st/100 != 2 {
			return Report{}, fmt.Errorf("registering %s: %d %s %v", id, st, b, err)
		}
	}
	tokens := make([]string, o.devices)
	for i := range o.devices {
		id := fmt.Sprintf("vaultha-%d", i)
		if st, b, err := c.do(ctx, http.MethodPut, o.servers[0]+"/v1/devices/"+id, o.admin, device(i, 0)); err != nil || st/100 != 2 {
			return Report{}, fmt.Errorf("registering %s: %d %s %v", id, st, b, err)
		}
		st, b, err := c.do(ctx, http.MethodPost, o.servers[0]+"/v1/devices/"+id+"/tokens", o.admin, nil)
		if err != nil || st/100 != 2 {
			return Report{}, fmt.Errorf("device token for %s: %d %v", id, st, err)
		}
		var tok struct{ Token string }
		if err := json.Unmarshal(b, &tok); err != nil || tok.Token == "" {
			return Report{}, fmt.Errorf("device token for %s: no token in the answer", id)
		}
		tokens[i] = tok.Token
	}
	defer func() {
		for i := range o.devices {
			_, _, _ = c.do(context.Background(), http.MethodDelete, fmt.Sprintf("%s/v1/devices/vaultha-%d", o.servers[0], i), o.admin, nil)
			_, _, _ = c.do(context.Background(), http.MethodDelete, fmt.Sprintf("%s/v1/devices/vaultha-w-%d", o.servers[0], i), o.admin, nil)
		}
	}()

	start := time.Now()
	ctx, cancel := context.WithDeadline(ctx, start.Add(o.duration))
	defer cancel()
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
		killAt  time.Time
		killErr error
	)
	// The kill.
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-time.After(o.killAfter):
		case <-ctx.Done():
			return
		}
		mu.Lock()
		killAt = time.Now()
		mu.Unlock()
		if o.kill != "" {
			out, err := exec.Command("sh", "-c", o.kill).CombinedOutput()
			if err != nil {
				killErr = fmt.Errorf("-kill %q: %v: %s", o.kill, err, out)
			}
		}
		fmt.Fprintf(stderr, "vaultha: ran the kill at %.1fs\n", time.Since(start).Seconds())
	}()
	// Steady issuance: one request every 1/rate seconds, each in its own
	// goroutine so a slow answer does not slow the schedule.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			srv, dev := n%len(o.servers), (n/len(o.servers))%o.devices
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				st, _, _ := c.do(context.Background(), http.MethodPost,
					fmt.Sprintf("%s/v1/devices/vaultha-%d/credentials", o.servers[srv], dev), tokens[dev], nil)
				mu.Lock()
				results = append(results, result{at: t0, server: srv, ok: st == http.StatusOK, status: st, latency: time.Since(t0)})
				mu.Unlock()
			}()
		}
	}()
	// One writer per device: sequential replacements, each through the next
	// server; the last acknowledged sequence number must survive.
	acked := make([]int, o.devices)
	var writesOK, writesFailed int
	for i := range o.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 1; ctx.Err() == nil; seq++ {
				srv := o.servers[seq%len(o.servers)]
				st, _, _ := c.do(context.Background(), http.MethodPut, fmt.Sprintf("%s/v1/devices/vaultha-w-%d", srv, i), o.admin, device(1000+i, seq))
				mu.Lock()
				if st/100 == 2 {
					acked[i] = seq
					writesOK++
				} else {
					writesFailed++
				}
				mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	if killErr != nil {
		return Report{}, killErr
	}

	r := summarize(o, start, killAt, results)
	r.WritesAcked, r.WritesFailed = writesOK, writesFailed
	// Read every device back through every server.
	for i := range o.devices {
		for _, srv := range o.servers {
			var seq int
			var lastErr string
			for try := 0; try < 20; try++ { // the store may still be settling
				st, b, err := c.do(context.Background(), http.MethodGet, fmt.Sprintf("%s/v1/devices/vaultha-w-%d", srv, i), o.admin, nil)
				if err == nil && st == http.StatusOK {
					var d struct {
						Labels map[string]string `json:"labels"`
					}
					if json.Unmarshal(b, &d) == nil {
						seq, _ = strconv.Atoi(d.Labels["seq"])
						lastErr = ""
						break
					}
				}
				lastErr = fmt.Sprintf("status %d %v", st, err)
				time.Sleep(500 * time.Millisecond)
			}
			if lastErr != "" {
				return r, fmt.Errorf("reading vaultha-w-%d back through %s: %s", i, srv, lastErr)
			}
			if seq < acked[i] {
				r.WritesLost++
				r.LostWriteDetail = append(r.LostWriteDetail, fmt.Sprintf("vaultha-w-%d via %s: seq %d, acknowledged %d", i, srv, seq, acked[i]))
			}
		}
	}
	return r, nil
}

// summarize turns the request log into the report's numbers.
func summarize(o options, start, killAt time.Time, results []result) Report {
	sort.Slice(results, func(i, j int) bool { return results[i].at.Before(results[j].at) })
	r := Report{
		Servers:             o.servers,
		Requests:            len(results),
		ErrorsByStatus:      map[string]int{},
		FirstErrorAfterKill: -1,
		LastErrorAfterKill:  -1,
		Recovery:            -1,
		LongestGap:          make([]float64, len(o.servers)),
	}
	if !killAt.IsZero() {
		r.KilledAtSeconds = killAt.Sub(start).Seconds()
	}
	end := start.Add(o.duration)
	lastOK := make([]time.Time, len(o.servers))
	for i := range lastOK {
		lastOK[i] = start
	}
	var before, after []time.Duration
	var lastFail time.Time
	for _, x := range results {
		if x.ok {
			r.Issued++
			if g := x.at.Sub(lastOK[x.server]).Seconds(); g > r.LongestGap[x.server] {
				r.LongestGap[x.server] = g
			}
			lastOK[x.server] = x.at
			if killAt.IsZero() || x.at.Before(killAt) {
				before = append(before, x.latency)
			} else {
				after = append(after, x.latency)
			}
			continue
		}
		r.Errors++
		r.ErrorsByStatus[strconv.Itoa(x.status)]++
		lastFail = x.at
		if !killAt.IsZero() && !x.at.Before(killAt) {
			s := x.at.Sub(killAt).Seconds()
			if r.FirstErrorAfterKill < 0 {
				r.FirstErrorAfterKill = s
			}
			r.LastErrorAfterKill = s
		}
	}
	for i := range lastOK {
		if g := end.Sub(lastOK[i]).Seconds(); g > r.LongestGap[i] {
			r.LongestGap[i] = g
		}
	}
	if !killAt.IsZero() {
		// Recovered: after the last failure, every server issued again.
		from := killAt
		if lastFail.After(from) {
			from = lastFail
		}
		recovered := time.Time{}
		for srv := range o.servers {
			var first time.Time
			for _, x := range results {
				if x.server == srv && x.ok && x.at.After(from) {
					first = x.at
					break
				}
			}
			if first.IsZero() {
				recovered = time.Time{}
				break
			}
			if first.After(recovered) {
				recovered = first
			}
		}
		if !recovered.IsZero() {
			r.Recovery = recovered.Sub(killAt).Seconds()
		}
	}
	r.P50Before, r.P99Before = quantile(before, 0.5), quantile(before, 0.99)
	r.P99After = quantile(after, 0.99)
	return r
}

func quantile(d []time.Duration, q float64) string {
	if len(d) == 0 {
		return ""
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))].Round(100 * time.Microsecond).String()
}
