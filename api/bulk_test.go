package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/credsign/credsign/internal/apiclient"
	"github.com/credsign/credsign/internal/testing/testutil"
)

// ndjsonBody is a request body sent as application/x-ndjson by env.do.
type ndjsonBody string

func init() {
	// The responses of env.do are checked against openapi.yaml; an NDJSON
	// answer is checked line by line against its schema (kin-openapi knows
	// no NDJSON decoder of its own).
	openapi3filter.RegisterBodyDecoder(ndjson, func(body io.Reader, _ http.Header, schema *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		var last any
		sc := bufio.NewScanner(body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var v any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				return nil, err
			}
			if err := schema.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
				return nil, fmt.Errorf("line %s: %w", sc.Bytes(), err)
			}
			last = v
		}
		return last, sc.Err()
	})
}

// importLines is an NDJSON body of the given lines: maps are encoded as
// JSON, strings are taken as they are.
func importLines(lines ...any) ndjsonBody {
	var b strings.Builder
	for _, l := range lines {
		switch l := l.(type) {
		case string:
			b.WriteString(l)
		default:
			j, err := json.Marshal(l)
			if err != nil {
				panic(err)
			}
			b.Write(j)
		}
		b.WriteByte('\n')
	}
	return ndjsonBody(b.String())
}

// withID is the device document of cloud with an id (and its own secret).
func withID(cloud, id string) map[string]any {
	d := map[string]any{"id": id}
	for k, v := range devices()[cloud] {
		d[k] = v
	}
	return d
}

// importResults runs an import with the generated client and returns its
// result lines and the summary.
func importResults(t *testing.T, e *env, token string, params apiclient.ImportDevicesParams, body io.Reader) ([]apiclient.ImportLine, apiclient.ImportSummary, []byte) {
	t.Helper()
	c, err := apiclient.NewClient(e.url, apiclient.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.ImportDevicesWithBody(context.Background(), &params, ndjson, body)
	raw := testutil.ReadAnswer(t, "import", res, err)
	_, _ = e.bodies.Write(raw)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != ndjson || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, Content-Type %q, Cache-Control %q: %s", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"), raw)
	}
	var lines []apiclient.ImportLine
	var sum *apiclient.ImportSummary
	for _, l := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		var il apiclient.ImportLine
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&il); err != nil {
			t.Fatalf("answer line %s: %v", l, err)
		}
		if sum != nil {
			t.Fatalf("a line after the summary: %s", l)
		}
		if il.Summary != nil {
			sum = il.Summary
			if il.Problem != nil {
				t.Fatalf("import cut short: %+v", *il.Problem)
			}
			continue
		}
		lines = append(lines, il)
	}
	if sum == nil {
		t.Fatalf("no summary in %s", raw)
	}
	return lines, *sum, raw
}

func mode(m apiclient.ImportDevicesParamsMode, tokens bool) apiclient.ImportDevicesParams {
	return apiclient.ImportDevicesParams{Mode: &m, Tokens: &tokens}
}

// TestImportDevices drives POST /v1/imports with the client generated from
// openapi.yaml against a real server: a file with bad lines of every kind
// imports the rest, each line gets its own status in order, the tokens
// work, no secret comes back, and running the same file again resumes it
// (create: 409 for what exists) or replaces it (upsert).
func TestImportDevices(t *testing.T) {
	e := newEnv(t, nil)
	prov := createProvisioner(t, e)
	long := withID("aliyun", "too-long")
	long["labels"] = map[string]string{"pad": strings.Repeat("x", 256)}
	body := string(importLines(
		withID("aliyun", "imp-1"), // 1
		`{"id":"imp-2","cloud":`,  // 2 not JSON
		map[string]any{"id": "imp-3", "cloud": "nimbus", "params": map[string]any{}, "secret": "s3cr3t-nimbus"}, // 3 unknown cloud
		devices()["tencent"],          // 4 no id
		withID("huawei", "imp-1"),     // 5 the id of line 1
		"",                            // 6 blank: no result
		withID("azure", "imp-7"),      // 7
		`{"id":"imp-8","id":"imp-9"}`, // 8 a member twice
		`{"id":"imp-9","cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"x"},"secret":"\ud800"}`, // 9 lone surrogate
		"{\"id\":\"imp-10\",\"secret\":\""+strings.Repeat("a", maxImportLine)+"\"}",                                // 10 too long
		withID("tencent", "imp-11"), // 11
	))
	body += `{"id":"imp-12","cloud":"huawei","params":{"deviceId":"64f1_node12"},"secret":"huawei-secret-12"}` // 12, no newline at the end
	want := []struct {
		line   int64
		id     string
		status int
		field  string
	}{
		{1, "imp-1", 201, ""},
		{2, "", 400, "body"},
		{3, "imp-3", 422, "cloud"},
		{4, "", 422, "id"},
		{5, "imp-1", 409, ""},
		{7, "imp-7", 201, ""},
		{8, "", 400, "id"},
		{9, "", 400, "body"},
		{10, "", 413, ""},
		{11, "imp-11", 201, ""},
		{12, "imp-12", 201, ""},
	}
	lines, sum, raw := importResults(t, e, prov, mode(apiclient.ImportDevicesParamsModeCreate, true), strings.NewReader(body))
	if len(lines) != len(want) {
		t.Fatalf("%d results, want %d:\n%s", len(lines), len(want), raw)
	}
	tokens := map[string]string{}
	for i, w := range want {
		got := lines[i]
		id := ""
		if got.Id != nil {
			id = *got.Id
		}
		if got.Line == nil || *got.Line != w.line || got.Status == nil || *got.Status != w.status || id != w.id {
			t.Errorf("result %d: %s, want line %d id %q status %d", i, mustJSON(got), w.line, w.id, w.status)
			continue
		}
		switch {
		case w.status < 300:
			if got.Problem != nil || got.Token == nil || !strings.HasPrefix(*got.Token, "csd_") || got.TokenId == nil {
				t.Errorf("line %d: %s, want a token and no problem", w.line, mustJSON(got))
				continue
			}
			tokens[id] = *got.Token
		case got.Problem == nil || got.Problem.Status != w.status || got.Token != nil:
			t.Errorf("line %d: %s, want a problem with status %d and no token", w.line, mustJSON(got), w.status)
		case w.field != "" && (got.Problem.Errors == nil || !hasField(*got.Problem.Errors, w.field)):
			t.Errorf("line %d: problem %s does not name %s", w.line, mustJSON(got.Problem), w.field)
		}
	}
	wantSum := apiclient.ImportSummary{Lines: 12, Created: 4, Updated: 0, Failed: 7, Tokens: 4}
	if sum != wantSum {
		t.Errorf("summary %+v, want %+v", sum, wantSum)
	}
	for _, s := range []string{"aliyun-secret-7f3c9e1d2b4a", "dGVuY2VudC1wc2stc2VjcmV0LTQ0MQ==", "YXp1cmUtZGV2aWNlLWtleS0zMi1ieXRlcy1sb25nISE=", "huawei-secret-12", "s3cr3t-nimbus"} {
		if bytes.Contains(raw, []byte(s)) || strings.Contains(e.logs.String(), s) {
			t.Errorf("a device secret is in the answer or the log")
		}
	}
	for id, tok := range tokens {
		mustStatus(t, e.do("POST", "/v1/devices/"+id+"/credentials", tok, nil), 200, "credentials with the imported token of "+id)
	}
	r := e.do("GET", "/v1/devices/imp-1", prov, nil)
	mustStatus(t, r, 200, "get imp-1")
	if !strings.Contains(string(r.body), `"aliyun"`) {
		t.Errorf("imp-1 is not the device of line 1: %s", r.body)
	}
	for _, id := range []string{"imp-3", "imp-8", "imp-9", "imp-10"} {
		mustStatus(t, e.do("GET", "/v1/devices/"+id, prov, nil), 404, id+" was not written")
	}

	// Resume: the same file again in create mode writes nothing new and
	// says 409 for every device that exists.
	lines, sum, _ = importResults(t, e, prov, mode(apiclient.ImportDevicesParamsModeCreate, false), strings.NewReader(body))
	if sum.Created != 0 || sum.Updated != 0 || sum.Failed != 11 || sum.Tokens != 0 {
		t.Errorf("re-run summary %+v", sum)
	}
	for _, l := range lines {
		if *l.Line == 1 || *l.Line == 7 || *l.Line == 11 || *l.Line == 12 {
			if *l.Status != 409 {
				t.Errorf("re-run line %d: %s, want 409", *l.Line, mustJSON(l))
			}
		}
	}
	// Upsert replaces the devices (200), still refusing line 5's
	// duplicate; the old tokens keep working (the device was replaced,
	// not created again).
	lines, sum, _ = importResults(t, e, prov, mode(apiclient.ImportDevicesParamsModeUpsert, false), strings.NewReader(body))
	if sum.Created != 0 || sum.Updated != 4 || sum.Failed != 7 {
		t.Errorf("upsert summary %+v", sum)
	}
	if *lines[0].Status != 200 || *lines[4].Status != 409 || lines[4].Problem.Detail == nil || !strings.Contains(*lines[4].Problem.Detail, "line 1") {
		t.Errorf("upsert: line 1 %s, line 5 %s", mustJSON(lines[0]), mustJSON(lines[4]))
	}
	mustStatus(t, e.do("POST", "/v1/devices/imp-1/credentials", tokens["imp-1"], nil), 200, "old token after upsert")
}

// TestImportStreams: results come back while the body is still being
// sent (the server neither buffers the body nor the answer), so a client
// can see line 1's result before it sends line 2.
func TestImportStreams(t *testing.T) {
	e := newEnv(t, nil)
	prov := createProvisioner(t, e)
	pr, pw := io.Pipe()
	req, err := apiclient.NewImportDevicesRequestWithBody(e.url, &apiclient.ImportDevicesParams{}, ndjson, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+prov)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req = req.WithContext(ctx)
	type answer struct {
		res *http.Response
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		done <- answer{res, err}
	}()
	write := func(l any) {
		if _, err := io.WriteString(pw, string(importLines(l))); err != nil {
			t.Fatal(err)
		}
	}
	write(withID("aliyun", "s-1"))
	var a answer
	select {
	case a = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("no answer to the first line within 10s; server log:\n%s", e.logs.String())
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.res.Body.Close()
	rd := bufio.NewReader(a.res.Body)
	for i, l := range []any{withID("azure", "s-2"), `not json`, withID("tencent", "s-4")} {
		got, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("result %d before the next line was sent: %v", i+1, err)
		}
		if !strings.Contains(got, fmt.Sprintf(`"line":%d,`, i+1)) {
			t.Fatalf("result %d: %s", i+1, got)
		}
		write(l)
	}
	pw.Close()
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rest), `"line":4,"id":"s-4","status":201`) || !strings.Contains(string(rest), `"summary":{"created":3,"existing":0,"failed":1,"lines":4,"tokens":0,"updated":0}`) {
		t.Errorf("the end of the answer: %s", rest)
	}
}

// TestImportRefusals: what the gate refuses before the stream starts is a
// problem document, like any other request.
func TestImportRefusals(t *testing.T) {
	e := newEnv(t, nil)
	prov := createProvisioner(t, e)
	line := importLines(withID("aliyun", "r-1"))
	mustStatus(t, e.do("POST", "/v1/imports", prov, string(line)), 415, "application/json")
	mustStatus(t, e.do("POST", "/v1/imports?mode=merge", prov, line), 400, "unknown mode")
	mustStatus(t, e.do("POST", "/v1/imports?tokens=maybe", prov, line), 400, "tokens not a boolean")
	mustStatus(t, e.do("POST", "/v1/imports", prov, line, "Content-Encoding", "gzip"), 415, "gzip")
	mustStatus(t, e.do("POST", "/v1/imports", prov, line, "Content-Type", ndjson+"; charset=latin1"), 415, "latin1")
	mustStatus(t, e.do("POST", "/v1/imports", "", line), 401, "no token")
	r := e.do("POST", "/v1/imports", prov, ndjsonBody(""))
	mustStatus(t, r, 200, "empty import")
	if strings.TrimSpace(string(r.body)) != `{"summary":{"created":0,"existing":0,"failed":0,"lines":0,"tokens":0,"updated":0}}` {
		t.Errorf("empty import: %s", r.body)
	}
	mustStatus(t, e.do("GET", "/v1/devices/r-1", prov, nil), 404, "nothing written")
}

func hasField(errs []apiclient.FieldError, field string) bool {
	for _, e := range errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// createProvisioner mints a provisioner token with the admin token.
func createProvisioner(t *testing.T, e *env) string {
	t.Helper()
	r := e.do("POST", "/v1/tokens", testAdmin, map[string]any{"role": "provisioner"})
	mustStatus(t, r, 201, "create provisioner token")
	var tc struct{ Token string }
	r.json(t, &tc)
	return tc.Token
}

// TestImportBatches: more lines than one batch, bad ones among them, are
// answered one result per line in order, with an id repeated across a
// batch boundary refused.
func TestImportBatches(t *testing.T) {
	e := newEnv(t, nil)
	prov := createProvisioner(t, e)
	const n = importBatch + 40
	var lines []any
	for i := 1; i <= n; i++ {
		switch {
		case i%50 == 0:
			lines = append(lines, `{"id":`)
		case i == n:
			lines = append(lines, withID("aliyun", "b-1"))
		default:
			lines = append(lines, withID("aliyun", fmt.Sprintf("b-%d", i)))
		}
	}
	results, sum, _ := importResults(t, e, prov, apiclient.ImportDevicesParams{}, strings.NewReader(string(importLines(lines...))))
	if len(results) != n {
		t.Fatalf("%d results for %d lines", len(results), n)
	}
	for i, r := range results {
		want := 201
		switch line := i + 1; {
		case line%50 == 0:
			want = 400
		case line == n:
			want = 409
		}
		if *r.Line != int64(i+1) || *r.Status != want {
			t.Fatalf("result %d: %s, want line %d status %d", i, mustJSON(r), i+1, want)
		}
	}
	if sum.Created != n-1-n/50 || sum.Failed != 1+n/50 || sum.Lines != n {
		t.Errorf("summary %+v", sum)
	}
}

// TestImportIntoGroup: an import line may name a group and leave out its
// cloud, params and secret (the ImportDevice schema allows it, the group
// fills them in), and its token then gets credentials; a line naming no
// existing group is refused for itself alone.
func TestImportIntoGroup(t *testing.T) {
	e := newEnv(t, nil)
	prov := createProvisioner(t, e)
	mustStatus(t, e.do("PUT", "/v1/groups/lamps", prov, map[string]any{
		"cloud": "azure", "secret": "YXp1cmUtZ3JvdXAta2V5LTMyLWJ5dGVzLWxvbmchISE=",
		"params": map[string]any{"hubHost": "lamps.azure-devices.net", "deviceId": "{deviceId}"},
	}), 201, "put group")
	body := importLines(
		map[string]any{"id": "lamp-1", "group": "lamps"},
		map[string]any{"id": "lamp-2", "group": "nowhere"},
	)
	lines, sum, raw := importResults(t, e, prov, mode(apiclient.ImportDevicesParamsModeCreate, true), strings.NewReader(string(body)))
	if len(lines) != 2 || *lines[0].Status != 201 || lines[0].Token == nil || *lines[1].Status != 422 ||
		lines[1].Problem == nil || lines[1].Problem.Errors == nil || !hasField(*lines[1].Problem.Errors, "group") {
		t.Fatalf("results:\n%s", raw)
	}
	if sum.Created != 1 || sum.Failed != 1 {
		t.Errorf("summary %+v", sum)
	}
	r := e.do("POST", "/v1/devices/lamp-1/credentials", *lines[0].Token, nil)
	mustStatus(t, r, 200, "credentials of the imported group device")
	if !strings.Contains(string(r.body), `"lamps.azure-devices.net"`) {
		t.Errorf("credentials do not use the group's template: %s", r.body)
	}
}
