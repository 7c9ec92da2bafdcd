package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/service"
)

// TestAmbiguousRequestsRefused: what could be read two ways is refused,
// never guessed, and changes nothing.
func TestAmbiguousRequestsRefused(t *testing.T) {
	e := newEnv(t, nil)
	doc := `{"cloud":"huawei","params":{"deviceId":"d_1"},"secret":"s3cret-value"}`
	cases := []struct {
		name   string
		body   string
		hdr    []string
		status int
	}{
		// A proxy may have checked either header.
		{"two Authorization headers", doc, []string{"Authorization", "Bearer csp_other"}, http.StatusBadRequest},
		// Compressed bytes read as JSON would be a guess.
		{"gzip body", doc, []string{"Content-Encoding", "gzip"}, http.StatusUnsupportedMediaType},
		{"br, identity", doc, []string{"Content-Encoding", "identity, br"}, http.StatusUnsupportedMediaType},
		// encoding/json turns a lone surrogate into U+FFFD: another secret.
		{"lone high surrogate in secret", strings.Replace(doc, "s3cret-value", `s3cret\ud800value`, 1), nil, http.StatusBadRequest},
		{"lone low surrogate in secret", strings.Replace(doc, "s3cret-value", `s3cret\udfffvalue`, 1), nil, http.StatusBadRequest},
		{"lone surrogate in a param", strings.Replace(doc, "d_1", `d_\uD801`, 1), nil, http.StatusBadRequest},
	}
	for _, c := range cases {
		req, err := http.NewRequest(http.MethodPut, e.url+"/v1/devices/amb", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add("Authorization", "Bearer "+testAdmin)
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Add(c.hdr[i], c.hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want %d problem JSON", c.name, res.StatusCode, res.Header.Get("Content-Type"), c.status)
		}
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/devices/amb", testAdmin, nil), http.StatusNotFound, "nothing stored")
	// A surrogate pair is a character: accepted.
	r := e.do(http.MethodPut, "/v1/devices/amb", testAdmin, strings.Replace(doc, "s3cret-value", `s3cret\ud83d\ude00`, 1))
	mustStatus(t, r, http.StatusCreated, "surrogate pair")
}

// TestNoTokenInLogs: a token pasted into a URL never reaches the log,
// whatever its kind (every row of service.TokenKinds: provisioner, device,
// enrolment, admin) or form; the operator chooses the admin token's.
func TestNoTokenInLogs(t *testing.T) {
	const admin = "operator-chosen-admin-secret-42"
	f := newFixture(t)
	e := newEnv(t, func(c *envConfig) { c.AdminToken = admin })
	generated, err := service.NewAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{admin, f.prov, f.dev, f.enrol, generated}
	if len(tokens)-1 != len(service.TokenKinds) {
		t.Fatalf("%d kinds of token in service.TokenKinds, %d tried here: add the new kind", len(service.TokenKinds), len(tokens)-1)
	}
	for _, tok := range tokens[1:] {
		// The random part alone, as if the prefix were cut off (a device
		// token of the second form has a MAC instead).
		if tail := tok[len(tok)-service.TokenRandomHexDigits:]; hexRun(tail, service.TokenRandomHexDigits) {
			tokens = append(tokens, tail)
		}
	}
	for _, tok := range tokens {
		for _, p := range []string{
			"/v1/devices/" + tok,
			"/v1/devices/x" + tok + "y/credentials",
			"/v1/" + tok,
			"/" + tok + "/v1/devices",
			"/v1/devices/Bearer%20" + tok,
			"/v1/devices/lamp?token=" + tok,
		} {
			e.do(http.MethodGet, p, admin, nil)
			e.do(http.MethodGet, p, "", nil)
		}
	}
	logs := e.logs.String()
	for _, secret := range tokens {
		if strings.Contains(logs, secret) {
			t.Errorf("token %.8s… reached the log:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "REDACTED") {
		t.Errorf("no redacted path in the log:\n%s", logs)
	}
}

// TestRedactor: what the access log shows of a path, for every kind of
// token and for a kind added later (a prefix appended to the list).
func TestRedactor(t *testing.T) {
	kinds := append(slices.Clone(service.TokenKinds), service.TokenKind{Prefix: "csz_", Role: "future"})
	rd := newRedactor([]string{"adm/in-secret"}, kinds)
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct{ in, want string }{
		{"/v1/devices/lamp-7/credentials", "/v1/devices/lamp-7/credentials"},
		{"/v1/devices/csp_" + hex64, "/v1/devices/REDACTED"},
		{"/v1/devices/csd_2.abc.bGFtcA.1.mac/credentials", "/v1/devices/REDACTED/credentials"},
		{"/v1/groups/g/enrolment-tokens/cse_0a1b2c.", "/v1/groups/g/enrolment-tokens/REDACTED"},
		{"/csa_x", "/REDACTED"},
		{"/v1/devices/csz_future", "/v1/devices/REDACTED"},
		{"/v1/devices/x" + hex64 + "y", "/v1/devices/REDACTED"},
		{"/v1/devices/" + hex64[:63], "/v1/devices/" + hex64[:63]},
		{"/v1/devices/adm/in-secret/x", "REDACTED"},
		{"/v1/devices/cs_d", "/v1/devices/cs_d"},
	} {
		if got := rd.path(c.in); got != c.want {
			t.Errorf("path(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := newRedactor(nil, service.TokenKinds).path("/v1/devices/csz_future"); got != "/v1/devices/csz_future" {
		t.Errorf("a prefix not on the list redacted: %q", got)
	}
}

// FuzzRedactor: no token text in a path survives redaction.
func FuzzRedactor(f *testing.F) {
	f.Add("/v1/devices/", "csp_"+strings.Repeat("ab", 32), "/credentials")
	f.Add("", "cse_x.y", "")
	rd := newRedactor([]string{"admin-secret"}, service.TokenKinds)
	f.Fuzz(func(t *testing.T, before, tok, after string) {
		for _, k := range service.TokenKinds {
			text := k.Prefix + tok
			if got := rd.path(before + text + after); strings.Contains(got, text) {
				t.Errorf("path(%q) = %q keeps %q", before+text+after, got, text)
			}
		}
	})
}

// TestDeviceTTLCap: a device token cannot mint a long-lived credential;
// provisioners can, up to the cloud's maximum; /v1/clouds says both.
func TestDeviceTTLCap(t *testing.T) {
	f := newFixture(t)
	ttl := func(n int) map[string]any { return map[string]any{"ttlSeconds": n} }
	p := f.do(http.MethodPost, "/v1/devices/aliyun-1/credentials", f.dev, ttl(86401)).problem(t)
	if p["status"].(float64) != 422 || !strings.Contains(p["errors"].([]any)[0].(map[string]any)["reason"].(string), "86400") {
		t.Errorf("device asking 86401 s: %v", p)
	}
	mustStatus(t, f.do(http.MethodPost, "/v1/devices/aliyun-1/credentials", f.dev, ttl(86400)), 200, "device at the cap")
	mustStatus(t, f.do(http.MethodPost, "/v1/devices/aliyun-1/credentials", f.prov, ttl(30*86400)), 200, "provisioner past the device cap")

	short := newEnv(t, func(c *envConfig) { c.MaxDeviceTTL = 10 * time.Minute })
	var list struct {
		Clouds []struct {
			Name                               string
			MaxTtlSeconds, MaxDeviceTtlSeconds int64
			DefaultTtlSeconds                  int64
		}
	}
	short.do(http.MethodGet, "/v1/clouds", testAdmin, nil).json(t, &list)
	for _, c := range list.Clouds {
		if c.MaxDeviceTtlSeconds != 600 {
			t.Errorf("%s: maxDeviceTtlSeconds %d, want 600", c.Name, c.MaxDeviceTtlSeconds)
		}
		if c.Name == "huawei" && c.MaxTtlSeconds != 3600 {
			// One truth: the server refuses more than an hour with the
			// default checkTimestamp, so that is the maximum it shows.
			t.Errorf("huawei maxTtlSeconds %d, want 3600", c.MaxTtlSeconds)
		}
	}
	// With the cap below the default lifetime, a device asking for none
	// gets the cap.
	mint := short.do(http.MethodPut, "/v1/devices/h1", testAdmin, devices()["azure"])
	mustStatus(t, mint, 201, "put")
	var tok struct{ Token string }
	short.do(http.MethodPost, "/v1/devices/h1/tokens", testAdmin, nil).json(t, &tok)
	var c struct{ IssuedAt, ExpiresAt time.Time }
	r := short.do(http.MethodPost, "/v1/devices/h1/credentials", tok.Token, nil)
	mustStatus(t, r, 200, "device default")
	r.json(t, &c)
	if life := c.ExpiresAt.Sub(c.IssuedAt); life > 10*time.Minute+time.Second {
		t.Errorf("device default lifetime %v over the 10m cap", life)
	}
}

// TestInvalidNamesEveryField: a 422 names every offending field with one
// detail, and numbers in reasons are integers.
func TestInvalidNamesEveryField(t *testing.T) {
	e := newEnv(t, nil)
	fields := func(p map[string]any) []string {
		var out []string
		for _, fe := range p["errors"].([]any) {
			out = append(out, fe.(map[string]any)["field"].(string))
		}
		return out
	}
	bad := map[string]any{
		"cloud":  "aliyun",
		"params": map[string]any{"productKey": "", "bogus": 1, "signMethod": "hmacsha512"},
		"secret": "line\n",
		"labels": map[string]string{"!": "x"},
	}
	p := e.do(http.MethodPut, "/v1/devices/many", testAdmin, bad).problem(t)
	got := fields(p)
	for _, want := range []string{"labels", "params.bogus", "params.deviceName", "params.productKey", "params.signMethod", "secret"} {
		if !slices.Contains(got, want) {
			t.Errorf("422 names %v, missing %s", got, want)
		}
	}
	if p["detail"] != "the request body is invalid" {
		t.Errorf("detail %q", p["detail"])
	}
	// Schema errors too: two bad fields, both named.
	p = e.do(http.MethodPut, "/v1/devices/many", testAdmin, `{"cloud":"huawei","params":{},"secret":"","zzz":1}`).problem(t)
	if got := fields(p); !slices.Contains(got, "secret") || !slices.Contains(got, "zzz") || p["detail"] != "the request body is invalid" {
		t.Errorf("schema 422 names %v (detail %q), want secret and zzz", got, p["detail"])
	}
	mustStatus(t, e.do(http.MethodPut, "/v1/devices/h", testAdmin, devices()["huawei"]), 201, "put")
	r := e.do(http.MethodPost, "/v1/devices/h/credentials", testAdmin, map[string]any{"ttlSeconds": 99999999999})
	if !strings.Contains(string(r.body), "31536000") || strings.Contains(string(r.body), "e+") {
		t.Errorf("reason numbers not integers: %s", r.body)
	}
	r = e.do(http.MethodPost, "/v1/devices/h/credentials", testAdmin, map[string]any{"ttlSeconds": 7200})
	if r.status != 422 || !strings.Contains(string(r.body), "at most 3600") {
		t.Errorf("huawei 7200 s: %d %s", r.status, r.body)
	}
}

// TestLastPageHasNoNext: a last page that is exactly full has no cursor.
func TestLastPageHasNoNext(t *testing.T) {
	e := newEnv(t, nil)
	for _, id := range []string{"a1", "a2", "a3", "a4"} {
		mustStatus(t, e.do(http.MethodPut, "/v1/devices/"+id, testAdmin, devices()["huawei"]), 201, "put")
	}
	for _, c := range []struct {
		q        string
		n        int
		wantNext bool
	}{
		{"limit=2", 2, true},
		{"limit=2&after=a2", 2, false},
		{"limit=4", 4, false},
		{"limit=3&label=x=y", 0, false},
	} {
		var page struct {
			Devices []struct{ ID string }
			Next    *string
		}
		e.do(http.MethodGet, "/v1/devices?"+c.q, testAdmin, nil).json(t, &page)
		if len(page.Devices) != c.n || (page.Next != nil) != c.wantNext {
			t.Errorf("%s: %d devices, next %v; want %d, next %v", c.q, len(page.Devices), page.Next, c.n, c.wantNext)
		}
	}
}

// TestCacheServesWhileStoreDown: devices the cache knows keep getting
// credentials for a bounded time while the store does not answer, /readyz
// says so, writes fail, and after the bound everything is 503.
func TestCacheServesWhileStoreDown(t *testing.T) {
	clk := &wallClock{}
	e := newEnv(t, func(c *envConfig) {
		c.Cache.TTL = 300 * time.Millisecond
		c.Cache.StaleFor = 1500 * time.Millisecond
		c.Now = clk.now
	})
	mustStatus(t, e.do(http.MethodPut, "/v1/devices/az", testAdmin, devices()["azure"]), 201, "put")
	var tok struct{ Token string }
	e.do(http.MethodPost, "/v1/devices/az/tokens", testAdmin, nil).json(t, &tok)
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 200, "warm the cache")

	e.store.down.Store(true)
	clk.advance(400 * time.Millisecond) // past the TTL: only stale entries are left
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 200, "cached device while the store is down")
	var h struct{ Status, Detail string }
	r := e.do(http.MethodGet, "/readyz", "", nil)
	mustStatus(t, r, 200, "readyz degraded")
	r.json(t, &h)
	if h.Status != "degraded" || h.Detail == "" {
		t.Errorf("readyz %+v, want degraded with a detail", h)
	}
	mustStatus(t, e.do(http.MethodPut, "/v1/devices/az2", testAdmin, devices()["azure"]), 503, "write while down")
	// A device the cache never saw is not served.
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/other/credentials", testAdmin, nil), 503, "unknown device while down")
	if !strings.Contains(e.logs.String(), "serving cached devices") {
		t.Errorf("no log line says cached devices are being served")
	}
	clk.advance(2100 * time.Millisecond) // past every bound: the entry's, and readyz's from when the outage was seen
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 503, "past the stale bound")
	mustStatus(t, e.do(http.MethodGet, "/readyz", "", nil), 503, "readyz past the bound")

	e.store.down.Store(false)
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 200, "store back")
	clk.advance(DefaultReadyCacheFor) // past readyz's cached answer
	readyzWithin(t, e, time.Second, "ok")
}

// readyzWithin fails unless /readyz answers 200 with status want within d.
func readyzWithin(t *testing.T, e *env, d time.Duration, want string) {
	t.Helper()
	testutil.Eventually(t, d, func() error {
		var h struct{ Status string }
		r := e.do(http.MethodGet, "/readyz", "", nil)
		if r.status == http.StatusOK {
			r.json(t, &h)
			if h.Status == want {
				return nil
			}
		}
		return fmt.Errorf("/readyz not %q: %d %s", want, r.status, r.body)
	})
}

// TestOwnWritesTakeEffectAtOnce: this replica's revokes and deletes are
// honoured at once, whatever the cache holds.
func TestOwnWritesTakeEffectAtOnce(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.Cache.TTL = time.Hour })
	mustStatus(t, e.do(http.MethodPut, "/v1/devices/az", testAdmin, devices()["azure"]), 201, "put")
	var tok struct{ ID, Token string }
	e.do(http.MethodPost, "/v1/devices/az/tokens", testAdmin, nil).json(t, &tok)
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 200, "cached")
	mustStatus(t, e.do(http.MethodDelete, "/v1/devices/az/tokens/"+tok.ID, testAdmin, nil), 204, "revoke")
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 401, "revoked token")

	e.do(http.MethodPost, "/v1/devices/az/tokens", testAdmin, nil).json(t, &tok)
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 200, "cached")
	mustStatus(t, e.do(http.MethodDelete, "/v1/devices/az", testAdmin, nil), 204, "delete")
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 404, "deleted device")
	mustStatus(t, e.do(http.MethodPut, "/v1/devices/az", testAdmin, devices()["azure"]), 201, "recreate")
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 403, "token older than the device")
	// An unknown token is cached as unknown; a token minted later with
	// that text cannot exist, but a new token works at once.
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", "csd_0000", nil), 401, "unknown")
	e.do(http.MethodPost, "/v1/devices/az/tokens", testAdmin, nil).json(t, &tok)
	mustStatus(t, e.do(http.MethodPost, "/v1/devices/az/credentials", tok.Token, nil), 200, "new token")
}

// TestReadyzPingsOnce: concurrent /readyz calls share one store ping, and
// its answer serves for DefaultReadyCacheFor; a store that stops answering
// shows within that.
func TestReadyzPingsOnce(t *testing.T) {
	clk := &wallClock{}
	e := newEnv(t, func(c *envConfig) { c.Now = clk.now })
	e.store.pingDelay = 50 * time.Millisecond
	const n = 32
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() { codes[i] = e.do(http.MethodGet, "/readyz", "", nil).status })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("call %d: %d", i, c)
		}
	}
	if got := e.store.pings.Load(); got != 1 {
		t.Errorf("%d concurrent /readyz calls pinged the store %d times, want 1", n, got)
	}
	e.store.down.Store(true)
	clk.advance(DefaultReadyCacheFor) // the answer ages out
	readyzWithin(t, e, time.Second, "degraded")
	if got := e.store.pings.Load(); got != 2 {
		t.Errorf("%d pings after the answer aged out, want 2", got)
	}
}
