package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/servertest"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/service"
)

const importAdmin = "csa_import-test-admin-0123456789"

// importServer is a real API server on loopback with an embedded store.
func importServer(t *testing.T) string {
	t.Helper()
	ts, _ := servertest.Start(t, service.Config{AdminToken: importAdmin})
	return ts.URL
}

func aliyunLine(id, secret string) string {
	return `{"id":"` + id + `","cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"` + id + `"},"secret":"` + secret + `"}`
}

// runCLI runs credsign with args, the token in CREDSIGN_TOKEN.
func runImportCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("CREDSIGN_TOKEN", importAdmin)
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// firstTwoOfThree returns the lines of three devices, prefix-1 to
// prefix-3 (secrets secret-prefix1 ...), and a file in a new directory
// holding the first two.
func firstTwoOfThree(t *testing.T, prefix string) (file string, lines []string) {
	t.Helper()
	for i := 1; i <= 3; i++ {
		lines = append(lines, aliyunLine(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("secret-%s%d", prefix, i)))
	}
	file = filepath.Join(t.TempDir(), "batch.ndjson")
	writeLines(t, file, lines[:2]...)
	return file, lines
}

// wantUsageLine runs credsign with args and fails t unless it exits 2
// with nothing on stdout and one line on stderr that says want.
func wantUsageLine(t *testing.T, want string, args ...string) {
	t.Helper()
	code, out, errs := runImportCLI(t, args...)
	if code != exitUsage || out != "" || !strings.Contains(errs, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errs, want)
	}
	if strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("more than one line on stderr: %q", errs)
	}
}

// writeLines writes lines to file, each ended by a newline.
func writeLines(t *testing.T, file string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// summaryHas fails t at once unless import exited with wantCode, and then
// for each of wants that its summary out lacks; errs is its stderr.
func summaryHas(t *testing.T, code, wantCode int, out, errs string, wants ...string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("exit %d, want %d; stdout %s stderr %s", code, wantCode, out, errs)
	}
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// readTokensCSV reads the tokens file import wrote as CSV: a header, then
// a device's id and token a row.
func readTokensCSV(name string) ([][]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return csv.NewReader(bytes.NewReader(b)).ReadAll()
}

// wantCredentials fails t unless each device of rows (id, token) gets
// credentials with its token, whose is what the message calls it.
func wantCredentials(t *testing.T, url string, rows [][]string, whose string) {
	t.Helper()
	for _, r := range rows {
		if status, _, _ := testutil.Do(t, nil, http.MethodPost, url+"/v1/devices/"+r[0]+"/credentials", r[1], nil); status != 200 {
			t.Errorf("credentials with %s of %s: %d", whose, r[0], status)
		}
	}
}

// TestImportFile: a file with malformed lines (bad JSON, unknown cloud,
// missing id, an id twice) imports every other line, names the bad ones by
// line number, exits 1 and writes the minted tokens (0600) that then get
// credentials; a second run resumes with --from-line.
func TestImportFile(t *testing.T) {
	url := importServer(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "batch.ndjson")
	lines := []string{
		aliyunLine("f-1", "secret-one-1"),
		`{"id":"f-2","cloud":"aliyun",`,
		`{"id":"f-3","cloud":"nimbus","params":{},"secret":"secret-three"}`,
		`{"cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"x"},"secret":"secret-four"}`,
		aliyunLine("f-1", "secret-five-5"),
		aliyunLine("f-6", "secret-six-6"),
	}
	writeLines(t, file, lines...)
	tokens := filepath.Join(dir, "tokens.csv")
	code, out, errs := runImportCLI(t, "import", "--server", url, "--tokens-out", tokens, file)
	summaryHas(t, code, exitError, out, errs,
		"6 lines from line 1: 2 created, 0 updated, 4 failed, 2 tokens",
		"line 2: 400 the line is not valid JSON",
		"line 3 (f-3): 422 the request body is invalid (cloud: value is not one of the allowed values [\"aliyun\"",
		"line 4: 422",
		"line 5 (f-1): 409 the id is on line 1 of this import already",
		"tokens written to "+tokens,
	)
	if strings.Contains(out+errs, "secret-") || strings.Contains(out+errs, "csd_") {
		t.Errorf("a secret or token in the output:\n%s%s", out, errs)
	}
	st, err := os.Stat(tokens)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file: %v %v", st, err)
	}
	recs, err := readTokensCSV(tokens)
	if err != nil || len(recs) != 3 || recs[0][0] != "id" || recs[1][0] != "f-1" || recs[2][0] != "f-6" {
		t.Fatalf("tokens file: %v %v", recs, err)
	}
	wantCredentials(t, url, recs[1:], "the token")

	// Resume from line 6 in create mode: f-6 exists (409, named as line 6
	// of the file); tokens are not asked for, and a new tokens file must
	// be new.
	code, out, _ = runImportCLI(t, "import", "--server", url, "--from-line", "6", file)
	if code != exitError || !strings.Contains(out, "1 lines from line 6: 0 created, 0 updated, 1 failed") || !strings.Contains(out, "line 6 (f-6): 409") {
		t.Errorf("resume: exit %d\n%s", code, out)
	}
	// Upsert replaces f-1 and f-6 (and still refuses the bad lines).
	code, out, _ = runImportCLI(t, "import", "--server", url, "--mode", "upsert", "--tokens-out", filepath.Join(dir, "t.ndjson"), file)
	if code != exitError || !strings.Contains(out, "0 created, 2 updated, 4 failed, 2 tokens") {
		t.Errorf("upsert: exit %d\n%s", code, out)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "t.ndjson"))
	var tok struct{ ID, TokenID, Token string }
	if err := json.Unmarshal(bytes.SplitN(raw, []byte("\n"), 2)[0], &tok); err != nil || tok.ID != "f-1" || !strings.HasPrefix(tok.Token, "csd_") || tok.TokenID == "" {
		t.Errorf("ndjson tokens: %s %v", raw, err)
	}
}

// TestImportResumeMode: --mode resume after a run whose tokens were lost
// exits 0, counts the devices that exist apart, and writes a working
// token for every device of the file; a device that differs from its line
// fails the run.
func TestImportResumeMode(t *testing.T) {
	url := importServer(t)
	file, lines := firstTwoOfThree(t, "m")
	// The first run's tokens "reach nobody".
	if code, out, errs := runImportCLI(t, "import", "--server", url, "--tokens", file); code != exitOK {
		t.Fatalf("first run: exit %d\n%s%s", code, out, errs)
	}
	writeLines(t, file, lines...)
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	code, out, errs := runImportCLI(t, "import", "--server", url, "--mode", "resume", "--tokens-out", tokens, file)
	if code != exitOK || !strings.Contains(out, "3 lines from line 1: 1 created, 0 updated, 2 existing, 0 failed, 3 tokens") {
		t.Fatalf("resume: exit %d\n%s%s", code, out, errs)
	}
	recs, err := readTokensCSV(tokens)
	if err != nil || len(recs) != 4 {
		t.Fatalf("tokens file: %v %v", recs, err)
	}
	wantCredentials(t, url, recs[1:], "the resumed token")
	// Without tokens, and with m-2 changed in the file: m-2 fails.
	lines[1] = aliyunLine("m-2", "secret-changed")
	writeLines(t, file, lines...)
	code, out, _ = runImportCLI(t, "import", "--server", url, "--mode", "resume", file)
	if code != exitError || !strings.Contains(out, "0 created, 0 updated, 2 existing, 1 failed, 0 tokens") || !strings.Contains(out, "line 2 (m-2): 409") {
		t.Errorf("resume with a changed line: exit %d\n%s", code, out)
	}
}

// TestImportAllGood: exit 0 when every line is written; stdin works.
func TestImportAllGood(t *testing.T) {
	url := importServer(t)
	t.Setenv("CREDSIGN_TOKEN", importAdmin)
	var out, errb bytes.Buffer
	in := strings.NewReader(aliyunLine("g-1", "secret-g1") + "\n" + aliyunLine("g-2", "secret-g2"))
	code := run(context.Background(), []string{"import", "--server", url, "-"}, in, &out, &errb)
	if code != exitOK || !strings.Contains(out.String(), "2 lines from line 1: 2 created, 0 updated, 0 failed, 0 tokens") {
		t.Errorf("exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// TestImportUsage: bad invocations exit 2 with one line on stderr and
// send nothing.
func TestImportUsage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.ndjson")
	_ = os.WriteFile(file, []byte(aliyunLine("u-1", "secret-u1")+"\n"), 0o600)
	exists := filepath.Join(dir, "exists.csv")
	_ = os.WriteFile(exists, nil, 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"import"}, "give one FILE"},
		{"two files", []string{"import", file, file}, "give one FILE"},
		{"bad mode", []string{"import", "--mode", "merge", file}, "--mode is create, upsert or resume"},
		{"bad format", []string{"import", "--tokens-out", filepath.Join(dir, "x"), "--tokens-format", "xml", file}, "--tokens-format is csv or ndjson"},
		{"format alone", []string{"import", "--tokens-format", "csv", file}, "--tokens-format needs --tokens-out"},
		{"from line 0", []string{"import", "--from-line", "0", file}, "--from-line must be 1 or more"},
		{"plain http", []string{"import", "--server", "http://credsign.example.com", file}, "not loopback"},
		{"look-alike", []string{"import", "--server", "http://127.0.0.1.example.com", file}, "not loopback"},
		{"no such file", []string{"import", "--server", "http://127.0.0.1:1", filepath.Join(dir, "nope")}, "no such file"},
		{"tokens file exists", []string{"import", "--server", "http://127.0.0.1:1", "--tokens-out", exists, file}, "file exists"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantUsageLine(t, tc.want, tc.args...) })
	}
	t.Setenv("CREDSIGN_TOKEN", "")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"import", file}, strings.NewReader(""), &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "no token") {
		t.Errorf("no token: exit %d %q", code, errb.String())
	}
}

// TestImportRefused: a server refusing the import (a wrong token) is exit
// 1 with its answer.
func TestImportRefused(t *testing.T) {
	url := importServer(t)
	file := filepath.Join(t.TempDir(), "f.ndjson")
	_ = os.WriteFile(file, []byte(aliyunLine("r-1", "secret-r1")+"\n"), 0o600)
	t.Setenv("CREDSIGN_TOKEN", "csp_wrong")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"import", "--server", url, file}, strings.NewReader(""), &out, &errb)
	if code != exitError || !strings.Contains(errb.String(), "401") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

// TestImportSkipExisting: a factory script re-running a whole file with
// --skip-existing gets exit 0, the devices already there counted apart
// and no new token for them; the summary names what it read. A device
// that exists and differs still fails, and --skip-existing with another
// mode is refused.
func TestImportSkipExisting(t *testing.T) {
	url := importServer(t)
	file, lines := firstTwoOfThree(t, "s")
	if code, out, errs := runImportCLI(t, "import", "--server", url, file); code != exitOK || !strings.Contains(out, "read "+file+" as NDJSON; mode create") {
		t.Fatalf("first run: exit %d\n%s%s", code, out, errs)
	}
	writeLines(t, file, lines...)
	// Without the flag the existing devices fail the run.
	if code, out, _ := runImportCLI(t, "import", "--server", url, file); code != exitError || !strings.Contains(out, "1 created, 0 updated, 2 failed") {
		t.Fatalf("create over existing devices: exit %d\n%s", code, out)
	}
	code, out, errs := runImportCLI(t, "import", "--server", url, "--skip-existing", file)
	if code != exitOK || !strings.Contains(out, "3 lines from line 1: 0 created, 0 updated, 3 existing, 0 failed, 0 tokens") || !strings.Contains(out, "mode resume") {
		t.Fatalf("--skip-existing: exit %d\n%s%s", code, out, errs)
	}
	lines[1] = aliyunLine("s-2", "secret-changed")
	writeLines(t, file, lines...)
	if code, out, _ := runImportCLI(t, "import", "--server", url, "--skip-existing", file); code != exitError || !strings.Contains(out, "2 existing, 1 failed") || !strings.Contains(out, "line 2 (s-2): 409") {
		t.Errorf("--skip-existing with a changed device: exit %d\n%s", code, out)
	}
	if code, _, errs := runImportCLI(t, "import", "--server", url, "--skip-existing", "--mode", "upsert", file); code != exitUsage || !strings.Contains(errs, "--skip-existing is --mode resume") {
		t.Errorf("--skip-existing --mode upsert: exit %d %s", code, errs)
	}
}
