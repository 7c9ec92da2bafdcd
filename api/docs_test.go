package api

import (
	"bytes"
	"context"
	"html"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/credsign/credsign"
	"github.com/credsign/credsign/internal/apidocs"
)

// docsOperation is what the reference must show of one operation of the
// contract.
type docsOperation struct{ id, summary string }

func specOperationsForDocs(t *testing.T) []docsOperation {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(credsign.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var ops []docsOperation
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			ops = append(ops, docsOperation{op.OperationID, op.Summary})
		}
	}
	if len(ops) < 20 {
		t.Fatalf("openapi.yaml has %d operations; the reference test expects them all", len(ops))
	}
	return ops
}

// TestDocsServed checks GET /docs: the embedded page, as HTML, with the
// policy that lets its scripts run, no credentials needed, and a page that
// is up to date with the contract and names nothing to load from the
// network.
func TestDocsServed(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do(http.MethodGet, "/docs", "", nil)
	mustStatus(t, r, http.StatusOK, "GET /docs")
	if ct := r.header.Get("Content-Type"); ct != "text/html" {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	if got := r.header.Get("Content-Security-Policy"); got != apidocs.CSP {
		t.Errorf("Content-Security-Policy %q, want %q", got, apidocs.CSP)
	}
	if !bytes.Equal(r.body, apidocs.HTML) {
		t.Errorf("body is %d bytes, not the %d of the embedded page", len(r.body), len(apidocs.HTML))
	}
	page := string(r.body)
	// The page carries the contract it was rendered from: a stale page (an
	// operation added without `go generate`) misses the new one.
	for _, op := range specOperationsForDocs(t) {
		if !strings.Contains(page, `"operationId":"`+op.id+`"`) {
			t.Errorf("the page does not carry operation %s; run go generate ./internal/apidocs", op.id)
		}
	}
	external := regexp.MustCompile(`(?i)<(script|img|iframe|source|link)\b[^>]*\b(src|href)="(https?:)?//[^"]*"`)
	if m := external.FindString(page); m != "" {
		t.Errorf("the page loads from the network: %s", m)
	}
	// Scripts are allowed by hash only (TestDocsInBrowser shows the hashes
	// are those of the page's scripts).
	if !strings.Contains(apidocs.CSP, "script-src 'sha256-") {
		t.Errorf("the policy does not list the page's scripts by hash: %s", apidocs.CSP)
	}
	for _, bad := range []string{"'unsafe-eval'", "'unsafe-inline' 'sha", "script-src 'unsafe-inline'", "http:", "https:", "*", "'self'"} {
		if strings.Contains(apidocs.CSP, bad) {
			t.Errorf("the policy allows %s: %s", bad, apidocs.CSP)
		}
	}
}

// browser finds a headless Chromium, or skips the test (fails it when CI
// says a browser must be there: CREDSIGN_REQUIRE_BROWSER=1 or
// CREDSIGN_REQUIRE_CLIENTS=1).
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH"
	if os.Getenv("CREDSIGN_REQUIRE_BROWSER") == "1" || os.Getenv("CREDSIGN_REQUIRE_CLIENTS") == "1" {
		t.Fatalf("%s (CREDSIGN_REQUIRE_BROWSER or CREDSIGN_REQUIRE_CLIENTS is set)", msg)
	}
	t.Skipf("%s; apt-get install chromium", msg)
	return ""
}

// chromium runs headless Chromium on url with args, after the page's
// scripts ran (10 s of virtual time), and returns its standard output and
// its log, where the page's console messages are (CSP violations among
// them).
func chromium(t *testing.T, bin, url string, args ...string) (stdout []byte, log string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args = append([]string{
		"--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0",
		"--virtual-time-budget=10000", "--window-size=1280,2000",
	}, append(args, url)...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errs.String())
	}
	return out.Bytes(), errs.String()
}

// cspViolations lists the console's Content-Security-Policy violations but
// the one the policy means: Redoc's "API docs by Redocly" logo, an image on
// a CDN, is refused (Redoc then shows none).
func cspViolations(log string) []string {
	var v []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "Content Security Policy") && !strings.Contains(line, "Loading the image 'https://cdn.redoc.ly/") {
			v = append(v, line)
		}
	}
	return v
}

// TestDocsInBrowser opens /docs in headless Chromium: after its scripts ran
// under the served policy, with none of them refused, every operation of
// the contract is on the page (its summary shown, its operationId in the
// link to it), and a screenshot of the page is a picture of the size asked
// for, with enough in it that a blank or unstyled page fails.
func TestDocsInBrowser(t *testing.T) {
	bin := browser(t)
	e := newEnv(t, nil)

	dom, log := chromium(t, bin, e.url+"/docs", "--dump-dom")
	if v := cspViolations(log); len(v) > 0 {
		t.Errorf("the page broke its Content-Security-Policy:\n%s", strings.Join(v, "\n"))
	}
	// What is rendered: the DOM without its scripts (the contract is in one,
	// as data) and styles, markup removed for the text.
	rendered := regexp.MustCompile(`(?is)<(script|style)\b.*?</(script|style)>`).ReplaceAllString(string(dom), "")
	text := html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(rendered, " "))
	text = strings.Join(strings.Fields(text), " ")
	for _, op := range specOperationsForDocs(t) {
		if !strings.Contains(text, op.summary) {
			t.Errorf("operation %s: its summary %q is not on the page", op.id, op.summary)
		}
		if !strings.Contains(rendered, `"operation/`+op.id+`"`) && !strings.Contains(rendered, `"#operation/`+op.id+`"`) {
			t.Errorf("operation %s: no element or link operation/%s on the page", op.id, op.id)
		}
	}

	shot := filepath.Join(t.TempDir(), "docs.png")
	if dir := os.Getenv("CREDSIGN_ARTIFACTS"); dir != "" {
		shot = filepath.Join(dir, "docs.png")
	}
	chromium(t, bin, e.url+"/docs", "--screenshot="+shot, "--hide-scrollbars")
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if cfg.Width != 1280 || cfg.Height != 2000 {
		t.Errorf("screenshot is %dx%d, want 1280x2000", cfg.Width, cfg.Height)
	}
	// A blank 1280x2000 page compresses to a few kB; the rendered reference
	// (text, tables, the dark samples panel) to about 230 kB.
	const minBytes = 100_000
	if len(b) < minBytes {
		t.Errorf("screenshot is %d bytes, under %d: the page did not render", len(b), minBytes)
	}
	t.Logf("screenshot %s: %dx%d, %d bytes", shot, cfg.Width, cfg.Height, len(b))
}

// TestDocsPolicyEnforced shows that TestDocsInBrowser would see a policy
// that refuses the page's scripts: the same page served with a policy
// missing their hashes makes Chromium report the refusal. (An httptest
// server with another policy: the real one cannot be made to send it.)
func TestDocsPolicyEnforced(t *testing.T) {
	bin := browser(t)
	broken := strings.Replace(apidocs.CSP, "script-src ", "script-src 'none' ", 1)
	broken = regexp.MustCompile(`'sha256-[^']*' ?`).ReplaceAllString(broken, "")
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Security-Policy", broken)
		_, _ = w.Write(apidocs.HTML)
	}))
	defer ts.Close()
	_, log := chromium(t, bin, ts.URL+"/docs", "--dump-dom")
	v := cspViolations(log)
	if len(v) == 0 || !strings.Contains(strings.Join(v, "\n"), "script-src") {
		t.Fatalf("policy %q: Chromium reported no refused script; the check in TestDocsInBrowser sees nothing", broken)
	}
}
