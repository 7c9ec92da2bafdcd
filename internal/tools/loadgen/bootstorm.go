package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/credsign/credsign/internal/apiclient"
)

// StormOptions configure a boot storm: Devices devices are registered
// through the bulk import with their tokens, then every device asks once
// for credentials, Concurrency at a time, twice (cold, then warm). Beside
// it, in the same run and with the same client, the same number of
// requests go to a bare net/http handler on loopback that answers the same
// bytes, and (when VaultAddr is set) GETs of one Vault KV key.
type StormOptions struct {
	// Server is credsign's base URL.
	Server string
	// AdminToken creates a provisioner token (or use ProvisionerToken).
	AdminToken       string
	ProvisionerToken string
	// Devices is the fleet size (default 1000).
	Devices int
	// Concurrency is the number of concurrent callers (default 256).
	Concurrency int
	// Prefix starts every device ID (default storm-<random>-).
	Prefix string
	// VaultAddr, VaultToken and VaultMount (default "secret", KV v2) name
	// a Vault for the KV GET baseline; none when VaultAddr is empty.
	VaultAddr, VaultToken, VaultMount string
}

// ImportStats describe the registration of the fleet.
type ImportStats struct {
	Devices   int           `json:"devices"`
	Failed    int           `json:"failed"`
	Took      time.Duration `json:"took"`
	PerSecond float64       `json:"perSecond"`
}

// StormReport is the result of a boot storm.
type StormReport struct {
	Devices     int         `json:"devices"`
	Concurrency int         `json:"concurrency"`
	Import      ImportStats `json:"import"`
	Cold        Stats       `json:"cold"`
	Warm        Stats       `json:"warm"`
	// Bare is the bare net/http handler answering the same bytes.
	Bare Stats `json:"bare"`
	// Vault is GET of one KV v2 key, when a Vault was given.
	Vault *Stats `json:"vault,omitempty"`
	// Ratios of throughput (requests/s).
	ColdVsBare  float64       `json:"coldVsBare"`
	WarmVsBare  float64       `json:"warmVsBare"`
	WarmVsVault float64       `json:"warmVsVault,omitempty"`
	ColdTook    time.Duration `json:"coldTook"`
}

// String formats r for people.
func (r StormReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "boot storm: %d devices, %d concurrent callers\n", r.Devices, r.Concurrency)
	fmt.Fprintf(&b, "import (POST /v1/imports, tokens=true): %d devices in %s, %.0f devices/s, %d failed\n",
		r.Import.Devices, r.Import.Took.Round(time.Millisecond), r.Import.PerSecond, r.Import.Failed)
	row := func(name string, s Stats) {
		fmt.Fprintf(&b, "%-34s %8.0f req/s  p50 %-10s p99 %-10s errors %d of %d", name, s.PerSecond,
			s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.Errors, s.Requests)
		if s.FirstError != "" {
			fmt.Fprintf(&b, " (first: %s)", s.FirstError)
		}
		b.WriteByte('\n')
	}
	row("cold: every device asks once", r.Cold)
	row("warm: every device asks again", r.Warm)
	row("bare net/http handler, same bytes", r.Bare)
	if r.Vault != nil {
		row("Vault KV GET of one key", *r.Vault)
	}
	fmt.Fprintf(&b, "cold storm took %s; throughput cold/bare x%.2f, warm/bare x%.2f", r.ColdTook.Round(time.Millisecond), r.ColdVsBare, r.WarmVsBare)
	if r.Vault != nil {
		fmt.Fprintf(&b, ", warm/Vault x%.2f", r.WarmVsVault)
	}
	b.WriteString("\n")
	return b.String()
}

// request is one request of a storm.
type request struct {
	url, token string
	header     string // the header the token goes in
}

// BootStorm runs a boot storm against o.Server.
func BootStorm(ctx context.Context, o StormOptions) (StormReport, error) {
	if o.Devices <= 0 {
		o.Devices = 1000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 256
	}
	if o.Prefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Prefix = "storm-" + hex.EncodeToString(b[:]) + "-"
	}
	if o.VaultMount == "" {
		o.VaultMount = "secret"
	}
	o.Server = strings.TrimRight(o.Server, "/")
	r := StormReport{Devices: o.Devices, Concurrency: o.Concurrency}
	setup := &caller{o: Options{Server: o.Server, Client: newClient(8)}}
	if o.ProvisionerToken == "" {
		var tok struct{ Token string }
		if err := setup.do(ctx, http.MethodPost, "/v1/tokens", o.AdminToken, map[string]string{"role": "provisioner"}, &tok); err != nil {
			return r, fmt.Errorf("bootstorm: create provisioner token: %w", err)
		}
		o.ProvisionerToken = tok.Token
	}
	tokens, imp, err := importFleet(ctx, o)
	r.Import = imp
	if err != nil {
		return r, err
	}
	reqs := make([]request, o.Devices)
	for i, tok := range tokens {
		reqs[i] = request{url: o.Server + "/v1/devices/" + o.Prefix + strconv.Itoa(i) + "/credentials", token: "Bearer " + tok, header: "Authorization"}
	}

	client := newClient(o.Concurrency)
	start := time.Now()
	r.Cold = storm(ctx, client, reqs, o.Concurrency)
	r.ColdTook = time.Since(start)
	r.Warm = storm(ctx, client, reqs, o.Concurrency)

	// The bare handler answers what credsign answered, byte for byte.
	body, header, err := sample(ctx, client, reqs[0])
	if err != nil {
		return r, fmt.Errorf("bootstorm: sample answer: %w", err)
	}
	bare, stop, err := bareServer(body, header)
	if err != nil {
		return r, err
	}
	defer stop()
	bareReqs := make([]request, o.Devices)
	for i := range bareReqs {
		bareReqs[i] = request{url: bare + "/v1/devices/" + o.Prefix + strconv.Itoa(i) + "/credentials", token: reqs[i].token, header: "Authorization"}
	}
	r.Bare = storm(ctx, newClient(o.Concurrency), bareReqs, o.Concurrency)

	if o.VaultAddr != "" {
		v, err := vaultBaseline(ctx, o)
		if err != nil {
			return r, err
		}
		r.Vault = &v
	}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if r.Bare.PerSecond > 0 {
		r.ColdVsBare = r.Cold.PerSecond / r.Bare.PerSecond
		r.WarmVsBare = r.Warm.PerSecond / r.Bare.PerSecond
	}
	if r.Vault != nil && r.Vault.PerSecond > 0 {
		r.WarmVsVault = r.Warm.PerSecond / r.Vault.PerSecond
	}
	return r, nil
}

func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
	}}
}

// importLines is how many devices one import carries: the server refuses
// an import past its line cap (serve --import-max-lines, 100,000 by
// default), so a larger fleet goes in several imports.
const importLines = 50_000

// importFleet registers the devices through POST /v1/imports (upsert,
// tokens=true), importLines at a time, generating the NDJSON as it is sent,
// and returns each device's token by index.
func importFleet(ctx context.Context, o StormOptions) ([]string, ImportStats, error) {
	st := ImportStats{Devices: o.Devices}
	c, err := apiclient.NewClient(o.Server, apiclient.WithHTTPClient(&http.Client{}),
		apiclient.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+o.ProvisionerToken)
			return nil
		}))
	if err != nil {
		return nil, st, err
	}
	tokens := make([]string, o.Devices)
	start := time.Now()
	var firstErr string
	for from := 0; from < o.Devices; from += importLines {
		failed, first, err := importRange(ctx, c, o, from, min(from+importLines, o.Devices), tokens)
		if err != nil {
			return nil, st, err
		}
		st.Failed += failed
		if firstErr == "" {
			firstErr = first
		}
	}
	st.Took = time.Since(start)
	st.PerSecond = float64(o.Devices-st.Failed) / st.Took.Seconds()
	if st.Failed > 0 {
		return nil, st, fmt.Errorf("bootstorm: import incomplete (%d failed; first: %s)", st.Failed, firstErr)
	}
	return tokens, st, nil
}

// importRange imports devices [from, to) in one request and writes their
// tokens into tokens. It returns how many lines failed (an import cut short
// counts its unanswered lines) and the first failed line's text.
func importRange(ctx context.Context, c *apiclient.Client, o StormOptions, from, to int, tokens []string) (int, string, error) {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		enc := json.NewEncoder(bw)
		clouds := []string{"aliyun", "tencent", "huawei", "azure"}
		for i := from; i < to; i++ {
			doc := testDevices(i)[clouds[i%len(clouds)]]
			doc["id"] = o.Prefix + strconv.Itoa(i)
			if err := enc.Encode(doc); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(bw.Flush())
	}()
	mode, yes := apiclient.ImportDevicesParamsModeUpsert, true
	res, err := c.ImportDevicesWithBody(ctx, &apiclient.ImportDevicesParams{Mode: &mode, Tokens: &yes}, "application/x-ndjson", pr)
	if err != nil {
		pr.CloseWithError(err)
		return 0, "", fmt.Errorf("bootstorm: import: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		pr.CloseWithError(errors.New("refused"))
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return 0, "", fmt.Errorf("bootstorm: import: %s: %s", res.Status, bytes.TrimSpace(b))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	var failed, answered int
	var firstErr string
	for sc.Scan() {
		var l apiclient.ImportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return 0, "", fmt.Errorf("bootstorm: import answer: %w", err)
		}
		if l.Summary != nil {
			if l.Problem != nil && firstErr == "" {
				firstErr = sc.Text()
			}
			break
		}
		answered++
		i := -1
		if l.Id != nil {
			i, _ = strconv.Atoi(strings.TrimPrefix(*l.Id, o.Prefix))
		}
		if l.Token == nil || i < from || i >= to {
			failed++
			if firstErr == "" {
				firstErr = sc.Text()
			}
			continue
		}
		tokens[i] = *l.Token
	}
	// Lines never answered (the import was cut short) failed too.
	failed += to - from - answered
	return failed, firstErr, nil
}

// storm sends every request once, conc at a time, and summarizes.
func storm(ctx context.Context, client *http.Client, reqs []request, conc int) Stats {
	var next atomic.Int64
	start := time.Now()
	all, errs, first := workers(min(conc, len(reqs)), func(_ int, ok func(time.Time), failed func(error)) {
		for ctx.Err() == nil {
			i := int(next.Add(1)) - 1
			if i >= len(reqs) {
				return
			}
			t0 := time.Now()
			if err := send(ctx, client, reqs[i], nil); err != nil {
				failed(err)
				continue
			}
			ok(t0)
		}
	})
	st := summarize(all, errs, time.Since(start))
	if first != nil {
		st.FirstError = first.Error()
	}
	return st
}

// send makes one request (POST for credsign, GET for Vault) and reads the
// whole answer; a non-2xx status is an error.
func send(ctx context.Context, client *http.Client, r request, out *[]byte) error {
	method := http.MethodPost
	if r.header != "Authorization" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set(r.header, r.token)
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", r.url, res.Status)
	}
	if out != nil {
		*out = b
	}
	return nil
}

// sample returns one answer of credsign and its headers.
func sample(ctx context.Context, client *http.Client, r request) ([]byte, http.Header, error) {
	var body []byte
	if err := send(ctx, client, r, &body); err != nil {
		return nil, nil, err
	}
	return body, http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}, nil
}

// bareServer serves body with header to every request on a loopback port.
func bareServer(body []byte, header http.Header) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bootstorm: bare handler: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for k, v := range header {
			w.Header()[k] = v
		}
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// vaultBaseline writes one KV v2 key and GETs it Devices times,
// Concurrency at a time.
func vaultBaseline(ctx context.Context, o StormOptions) (Stats, error) {
	addr := strings.TrimRight(o.VaultAddr, "/") + "/v1/" + o.VaultMount + "/data/credsign-bootstorm-baseline"
	payload := `{"data":{"secret":"bootstorm-baseline-not-a-secret","params":{"productKey":"a1LoadTest","deviceName":"dev0"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr, strings.NewReader(payload))
	if err != nil {
		return Stats{}, err
	}
	req.Header.Set("X-Vault-Token", o.VaultToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return Stats{}, fmt.Errorf("bootstorm: writing the Vault baseline key: %w", err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return Stats{}, fmt.Errorf("bootstorm: writing the Vault baseline key: %s", res.Status)
	}
	reqs := make([]request, o.Devices)
	for i := range reqs {
		reqs[i] = request{url: addr, token: o.VaultToken, header: "X-Vault-Token"}
	}
	return storm(ctx, newClient(o.Concurrency), reqs, o.Concurrency), nil
}
