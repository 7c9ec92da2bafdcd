package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/apiclient"
	"github.com/credsign/credsign/internal/testing/testutil"
)

// wideDoc is a device document within the depth and width limits of a
// body (depth 3, at most 256 members an object) that holds about members
// values in all, in the shape given: objects as param values (the schema
// validator tries each against every ParamValue), arrays under an unknown
// member, or labels with object values.
func wideDoc(shape, id string, members int) string {
	var b strings.Builder
	b.WriteString(`{`)
	if id != "" {
		b.WriteString(`"id":"` + id + `",`)
	}
	b.WriteString(`"cloud":"aliyun","secret":"0123456789abcdef0123456789abcdef","params":{"productKey":"a1B2c3D4e5F","deviceName":"wide"`)
	switch shape {
	case "params":
		for p := 0; p*256 < members; p++ {
			b.WriteString(`,"p` + strconv.Itoa(p) + `":` + wideObject(min(256, members-p*256)))
		}
		b.WriteString(`}`)
	case "unknown":
		b.WriteString(`},"zzz":[`)
		for p := 0; p*256 < members; p++ {
			if p > 0 {
				b.WriteString(",")
			}
			b.WriteString("[" + strings.TrimSuffix(strings.Repeat("1,", min(256, members-p*256)), ",") + "]")
		}
		b.WriteString(`]`)
	case "labels":
		b.WriteString(`},"labels":{`)
		for p := 0; p*256 < members; p++ {
			if p > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"l` + strconv.Itoa(p) + `":` + wideObject(min(256, members-p*256)))
		}
		b.WriteString(`}`)
	}
	return b.String() + `}`
}

// TestRefusedDocumentsAreBounded: a document within the limits of nesting
// and width but holding thousands of values is refused, on PUT and as an
// import line, at a cost (heap allocated, time) that does not grow with
// what it holds, and with a problem that names a bounded number of fields.
// Before the cap on values, a 6,200-member document cost some 48 ms of CPU
// and, 300 at once, a gigabyte of heap.
func TestRefusedDocumentsAreBounded(t *testing.T) {
	e := newEnv(t, nil)
	prov := createProvisioner(t, e)
	for _, shape := range []string{"params", "unknown", "labels"} {
		for _, members := range []int{1100, 3000, 6200} {
			t.Run(fmt.Sprintf("%s/%d", shape, members), func(t *testing.T) {
				body := wideDoc(shape, "", members)
				if len(body) > DefaultMaxBodyBytes {
					t.Fatalf("%d bytes: over the body cap, the test would not reach the checks", len(body))
				}
				const n = 20
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				start := time.Now()
				for range n {
					r := e.do(http.MethodPut, "/v1/devices/wide", prov, body)
					mustStatus(t, r, http.StatusUnprocessableEntity, "PUT of a document of "+strconv.Itoa(members)+" values")
					if len(r.body) > 4096 {
						t.Fatalf("a problem of %d bytes: %.300s", len(r.body), r.body)
					}
				}
				took := time.Since(start) / n
				runtime.ReadMemStats(&after)
				perPut := (after.TotalAlloc - before.TotalAlloc) / n
				t.Logf("PUT: %d bytes, %d KiB allocated and %v each", len(body), perPut>>10, took)
				// The client's and the server's allocations both count;
				// the body itself is some 60 KiB, read into a buffer that
				// grows. Unchecked, the validator allocated megabytes.
				if perPut > 1<<20 {
					t.Errorf("PUT: %d KiB allocated for each refused document", perPut>>10)
				}

				lines := make([]any, n)
				for i := range lines {
					lines[i] = wideDoc(shape, "wide-"+strconv.Itoa(i), members)
				}
				runtime.GC()
				runtime.ReadMemStats(&before)
				res, sum, raw := importResults(t, e, prov, apiclient.ImportDevicesParams{}, strings.NewReader(string(importLines(lines...))))
				runtime.ReadMemStats(&after)
				perLine := (after.TotalAlloc - before.TotalAlloc) / n
				t.Logf("import: %d KiB allocated each line, answer %d bytes", perLine>>10, len(raw))
				if sum.Failed != n || len(res) != n || *res[0].Status != http.StatusUnprocessableEntity {
					t.Fatalf("summary %+v, first result %s", sum, mustJSON(res[0]))
				}
				if perLine > 1<<20 {
					t.Errorf("import: %d KiB allocated for each refused line", perLine>>10)
				}
				if len(raw) > n*2048 {
					t.Errorf("an answer of %d bytes for %d refused lines", len(raw), n)
				}
			})
		}
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/devices/wide", prov, nil), http.StatusNotFound, "nothing written")
}

// TestCheckJSONAllocationsBounded: what checkJSON allocates to refuse a
// document stops growing at maxBodyValues, however many values follow.
func TestCheckJSONAllocationsBounded(t *testing.T) {
	allocs := func(members int) float64 {
		body := []byte(wideDoc("unknown", "x", members))
		return testing.AllocsPerRun(5, func() { _ = checkJSON(body) })
	}
	at, far := allocs(maxBodyValues+10), allocs(8*maxBodyValues)
	t.Logf("allocations: %v at the cap, %v for 8 times as many values", at, far)
	if far > at*1.1+10 {
		t.Errorf("checkJSON allocates %v times for 8x the cap's values, %v at the cap", far, at)
	}
}

// pipeImport starts an import whose body the test writes line by line;
// it returns the writer, a reader of the answer's lines, and a cancel that
// drops the connection.
func pipeImport(t *testing.T, e *env, token, query string) (*io.PipeWriter, *bufio.Reader, func()) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/v1/imports"+query, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ndjson)
	done := make(chan *http.Response, 1)
	errs := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			errs <- err
			return
		}
		done <- res
	}()
	t.Cleanup(func() { cancel(); pw.Close() })
	// The server answers once it has read a line.
	if _, err := io.WriteString(pw, "\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("import: %d %s", res.StatusCode, b)
		}
		t.Cleanup(func() { res.Body.Close() })
		return pw, bufio.NewReader(res.Body), cancel
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("no answer to an import")
	}
	return nil, nil, nil
}

// TestImportIdleTimeout: an import that sends only blank lines after its
// last device line is ended after the idle timeout, with every line it
// sent answered and a 408 beside the summary; one that keeps sending
// device lines as slowly is not.
func TestImportIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	e := newEnv(t, func(c *envConfig) { c.ImportIdleTimeout = idle })
	prov := createProvisioner(t, e)

	pw, rd, _ := pipeImport(t, e, prov, "")
	start := time.Now()
	go func(pw *io.PipeWriter, start time.Time) {
		_, _ = io.WriteString(pw, string(importLines(withID("aliyun", "idle-1"))))
		for time.Since(start) < 20*idle {
			time.Sleep(idle / 4)
			if _, err := io.WriteString(pw, "\n"); err != nil {
				return
			}
		}
		pw.Close()
	}(pw, start)
	var lines []string
	for {
		l, err := rd.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, l)
	}
	took := time.Since(start)
	if len(lines) != 2 || !strings.Contains(lines[0], `"id":"idle-1","status":201`) ||
		!strings.Contains(lines[1], `"summary"`) || !strings.Contains(lines[1], `"status":408`) {
		t.Fatalf("answer:\n%s", strings.Join(lines, ""))
	}
	if took > 10*idle {
		t.Errorf("ended after %v with blank lines every %v and an idle timeout of %v", took, idle/4, idle)
	}
	t.Logf("ended after %v: %s", took, lines[1])

	// Device lines at the same pace keep the import going past the
	// timeout, and it ends when the client ends it.
	pw, rd, _ = pipeImport(t, e, prov, "")
	start = time.Now()
	go func(pw *io.PipeWriter, start time.Time) {
		for i := 0; time.Since(start) < 4*idle; i++ {
			if _, err := io.WriteString(pw, string(importLines(withID("aliyun", "slow-"+strconv.Itoa(i))))); err != nil {
				return
			}
			time.Sleep(idle / 4)
		}
		pw.Close()
	}(pw, start)
	rest, err := io.ReadAll(rd)
	if err != nil || strings.Contains(string(rest), `"status":408`) || !strings.Contains(string(rest), `"summary"`) {
		t.Fatalf("slow import: %v\n%s", err, rest)
	}
}

// TestImportConcurrencyCap: a token may have ImportsPerToken imports under
// way and the server Imports; more are refused with 429 and Retry-After,
// and the slot is free again when an import ends.
func TestImportConcurrencyCap(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.Imports, c.ImportsPerToken = 2, 1 })
	a, b, c := createProvisioner(t, e), createProvisioner(t, e), createProvisioner(t, e)
	line := importLines(withID("aliyun", "cc-1"))

	pwA, rdA, _ := pipeImport(t, e, a, "")
	r := e.do(http.MethodPost, "/v1/imports", a, line)
	mustStatus(t, r, http.StatusTooManyRequests, "a second import of one token")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	pwB, rdB, _ := pipeImport(t, e, b, "")
	mustStatus(t, e.do(http.MethodPost, "/v1/imports", c, line), http.StatusTooManyRequests, "a third import on the server")

	pwA.Close()
	if _, err := io.ReadAll(rdA); err != nil {
		t.Fatal(err)
	}
	// The slot is released when the handler returns, just after the
	// summary was written: allow it a moment.
	testutil.Eventually(t, 5*time.Second, func() error {
		if r := e.do(http.MethodPost, "/v1/imports", c, line); r.status != http.StatusOK {
			return fmt.Errorf("the slot of an ended import is not free: %d %s", r.status, r.body)
		}
		return nil
	})
	pwB.Close()
	_, _ = io.ReadAll(rdB)
}

// TestImportLineCap: an import longer than ImportMaxLines has its first
// lines answered and a 413 beside the summary that names the first line
// not read.
func TestImportLineCap(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.ImportMaxLines = 5 })
	prov := createProvisioner(t, e)
	var lines []any
	for i := 1; i <= 8; i++ {
		lines = append(lines, withID("aliyun", "cap-"+strconv.Itoa(i)))
	}
	r := e.do(http.MethodPost, "/v1/imports", prov, importLines(lines...))
	mustStatus(t, r, http.StatusOK, "import")
	out := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	last := out[len(out)-1]
	if len(out) != 6 || !strings.Contains(last, `"lines":5`) || !strings.Contains(last, `"status":413`) || !strings.Contains(last, "line 6") {
		t.Fatalf("answer:\n%s", r.body)
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/devices/cap-6", prov, nil), http.StatusNotFound, "a line past the cap")
}

// TestImportResumeAfterDisconnect: a client that drops the connection
// part way, then sends the whole file again with mode=resume and
// tokens=true, ends with every device written and a working token for
// each, whatever the first run wrote without telling it; a line that
// differs from the device that exists is refused, not given a token.
func TestImportResumeAfterDisconnect(t *testing.T) {
	e := newEnv(t, nil)
	prov := createProvisioner(t, e)
	const n = 60
	var lines []any
	for i := range n {
		lines = append(lines, withID("aliyun", "res-"+strconv.Itoa(i)))
	}
	file := string(importLines(lines...))

	pw, rd, cancel := pipeImport(t, e, prov, "?tokens=true")
	go func() { _, _ = io.WriteString(pw, file[:len(file)/2]) }()
	heard := map[string]string{} // the tokens the first run delivered
	for len(heard) < 5 {
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("first run: %v", err)
		}
		var il apiclient.ImportLine
		if err := json.Unmarshal([]byte(l), &il); err != nil {
			t.Fatal(err)
		}
		if il.Token != nil {
			heard[*il.Id] = *il.Token
		}
	}
	cancel()                                      // the connection drops
	waitLog(t, e, "import: the client went away") // the first run has ended

	// A device of the file that exists but differs (written meanwhile by
	// someone else) is not the file's: refused, and left as it is.
	other := devices()["aliyun"]
	other["secret"] = "another-secret-0123456789abcdef0"
	mustStatus(t, e.do(http.MethodPut, "/v1/devices/res-59", prov, other), http.StatusCreated, "res-59 written apart")

	results, sum, raw := importResults(t, e, prov, mode(apiclient.ImportDevicesParamsModeResume, true), strings.NewReader(file))
	if sum.Created+sum.Existing != n-1 || sum.Failed != 1 || sum.Tokens != n-1 || sum.Existing < int64(len(heard)) {
		t.Fatalf("resume summary %+v:\n%s", sum, raw)
	}
	for _, r := range results {
		id := *r.Id
		if id == "res-59" {
			if *r.Status != http.StatusConflict || r.Token != nil {
				t.Errorf("res-59, which differs: %s", mustJSON(r))
			}
			continue
		}
		existing := r.Existing != nil && *r.Existing
		if r.Token == nil || !(*r.Status == http.StatusCreated && !existing || *r.Status == http.StatusOK && existing) {
			t.Fatalf("resume line %s", mustJSON(r))
		}
		if _, ok := heard[id]; ok && !existing {
			t.Errorf("%s, answered in the first run, created again: %s", id, mustJSON(r))
		}
		mustStatus(t, e.do(http.MethodPost, "/v1/devices/"+id+"/credentials", *r.Token, nil), http.StatusOK, "credentials with the resumed token of "+id)
	}
	for id, tok := range heard {
		mustStatus(t, e.do(http.MethodPost, "/v1/devices/"+id+"/credentials", tok, nil), http.StatusOK, "the first run's token of "+id)
	}
	t.Logf("resume: %d created, %d existing (%d of them answered in the first run)", sum.Created, sum.Existing, len(heard))
}

// TestImportStopsWhenClientGone: once the connection drops, the batch the
// server had read but not begun to write is not written (nobody would
// hear of it); the batch the store was writing completes.
func TestImportStopsWhenClientGone(t *testing.T) {
	e := newEnv(t, nil)
	prov := createProvisioner(t, e)
	pw, _, cancel := pipeImport(t, e, prov, "")
	h := &heldPuts{entered: make(chan string, 16), release: make(chan struct{})}
	e.store.hold.Store(h)
	release := sync.OnceFunc(func() { e.store.hold.Store(nil); close(h.release) })
	t.Cleanup(release) // before the server's Close, which waits for the import
	if _, err := io.WriteString(pw, string(importLines(withID("aliyun", "gone-a")))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.entered: // the writer is in the store with gone-a
	case <-time.After(10 * time.Second):
		t.Fatal("gone-a never reached the store")
	}
	if _, err := io.WriteString(pw, string(importLines(withID("aliyun", "gone-b")))); err != nil {
		t.Fatal(err)
	}
	cancel()
	// The server sees the connection drop where line 4 would begin (line 1
	// is pipeImport's blank line): it has read gone-b, whose batch waits
	// for the writer.
	waitLog(t, e, `"line":4,"message":"import: the connection broke`)
	release()
	waitLog(t, e, "import: the client went away") // the writer is done
	mustStatus(t, e.do(http.MethodGet, "/v1/devices/gone-a", prov, nil), http.StatusOK, "gone-a, whose write had begun")
	select {
	case id := <-h.entered:
		t.Errorf("%s was written after the client went away", id)
	default:
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/devices/gone-b", prov, nil), http.StatusNotFound, "gone-b, read after nothing more could be answered")
}

// waitLog waits for the server of e to log a line holding s.
func waitLog(t *testing.T, e *env, s string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(e.logs.String(), s) {
			return fmt.Errorf("no log line with %q in:\n%s", s, e.logs.String())
		}
		return nil
	})
}

// wideObject is a JSON object of n members "k0": 1, "k1": 1, ...
func wideObject(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":1`)
	}
	return b.String() + "}"
}
