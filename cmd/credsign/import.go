package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/credsign/credsign/internal/apiclient"
	clisettings "github.com/credsign/credsign/internal/cli"
	"github.com/credsign/credsign/internal/consolecsv"
)

// maxFailuresShown is how many failed lines the summary lists.
const maxFailuresShown = 10

// importFlags are the flags of `credsign import`.
type importFlags struct {
	settings     clisettings.Settings
	url          string
	mode         string
	skipExisting bool
	read         string // what FILE was read as, for the summary
	tokens       bool
	tokensOut    string
	tokensFormat string
	fromLine     int64
	file         string
	// Console CSV files (consolecsv): the format ("" detects it) and
	// what the rows lack.
	format     string
	params     map[string]string
	labels     map[string]string
	idTemplate string
}

func parseImportFlags(args []string, stderr io.Writer) (importFlags, error) {
	var f importFlags
	fs := flag.NewFlagSet("credsign import", flag.ContinueOnError)
	f.settings.Register(fs, "credsign import", nil, stderr, false)
	fs.StringVar(&f.mode, "mode", "create", "create: refuse devices that exist (409 on their line); upsert: replace them; resume: keep a device that exists as its line says (counted apart; with --tokens it gets a new token), refuse one that differs")
	fs.BoolVar(&f.skipExisting, "skip-existing", false, "keep the devices that already exist as their line describes them, counted apart as existing; exit 0 if nothing else failed (the same as --mode resume; a device that exists and differs still fails)")
	fs.BoolVar(&f.tokens, "tokens", false, "mint each device's token in the same pass (implied by --tokens-out)")
	fs.StringVar(&f.tokensOut, "tokens-out", "", "write the minted tokens to this new file (mode 0600)")
	fs.StringVar(&f.tokensFormat, "tokens-format", "", "csv (id,token) or ndjson; default from the --tokens-out name (.ndjson/.jsonl: ndjson, else csv)")
	fs.Int64Var(&f.fromLine, "from-line", 1, "start at this line of FILE (resume after the last line answered)")
	fs.StringVar(&f.format, "format", "", "ndjson, or a console CSV file: "+strings.Join(consolecsv.Formats(), ", ")+"; default from the first line")
	f.params, f.labels = map[string]string{}, map[string]string{}
	fs.Func("param", "`k=v`: a param every device of a CSV file gets (repeatable), e.g. regionId=cn-shanghai", keyValue(f.params, "--param"))
	fs.Func("label", "`k=v`: a label every device of a CSV file gets (repeatable)", keyValue(f.labels, "--label"))
	fs.StringVar(&f.idTemplate, "id-template", "", "device id of a CSV row: {param} and {line} placeholders; default per format (see docs/import.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: credsign import [flags] FILE\n\nRegisters the devices of FILE through POST /v1/imports. FILE is NDJSON (one device\ndocument with its \"id\" per line) or a console's batch CSV file (see --format and\ndocs/import.md); \"-\" reads stdin. Each line is written on its own: a bad\nline is reported with its line number and the rest is imported. Exits 1 if any line\nfailed. To resume an import cut short, run it again with --mode resume (and the same\n--tokens; with --from-line N to start at the first line not answered).\n\nflags:")
		fs.PrintDefaults()
	}
	// A bad flag is one line on stderr (runImport prints it); -h prints
	// the usage.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
		}
		return f, err
	}
	if fs.NArg() != 1 {
		return f, errors.New("give one FILE (or - for stdin)")
	}
	f.file = fs.Arg(0)
	if f.tokensOut != "" {
		f.tokens = true
		if f.tokensFormat == "" {
			f.tokensFormat = "csv"
			if ext := filepath.Ext(f.tokensOut); ext == ".ndjson" || ext == ".jsonl" {
				f.tokensFormat = "ndjson"
			}
		}
	}
	if f.skipExisting {
		if set := flagSet(fs, "mode"); set && f.mode != "resume" {
			return f, fmt.Errorf("--skip-existing is --mode resume, not --mode %s", f.mode)
		}
		f.mode = "resume"
	}
	switch {
	case f.mode != "create" && f.mode != "upsert" && f.mode != "resume":
		return f, fmt.Errorf("--mode is create, upsert or resume, not %q", f.mode)
	case f.tokensFormat != "" && f.tokensFormat != "csv" && f.tokensFormat != "ndjson":
		return f, fmt.Errorf("--tokens-format is csv or ndjson, not %q", f.tokensFormat)
	case f.tokensFormat != "" && f.tokensOut == "":
		return f, errors.New("--tokens-format needs --tokens-out")
	case f.fromLine < 1:
		return f, errors.New("--from-line must be 1 or more")
	case f.format != "" && f.format != "ndjson" && !slices.Contains(consolecsv.Formats(), f.format):
		return f, fmt.Errorf("--format is ndjson or one of %s, not %q", strings.Join(consolecsv.Formats(), ", "), f.format)
	case f.format == "ndjson" && (len(f.params) > 0 || len(f.labels) > 0 || f.idTemplate != ""):
		return f, errors.New("--param, --label and --id-template are for console CSV files; an NDJSON line carries its own")
	}
	var err error
	f.url, err = f.settings.Server()
	return f, err
}

// flagSet reports whether the command line gave the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// importTally is what the answer said so far.
type importTally struct {
	answered                 atomic.Int64 // results received
	created, updated, failed int64
	existing                 int64 // kept as they were (--mode resume)
	tokens                   int64
	failures                 []failure // the first maxFailuresShown, by line
	summary                  *apiclient.ImportSummary
	cut                      string // why the stream ended early, if it did

	// lineOf turns a line number of the answer into a line of the file.
	lineOf func(int64) int64
	// csv is set for a console CSV file: answered holds a line of the
	// file, and rows refused before sending count as lines too.
	csv  bool
	rows int64 // CSV rows refused before sending
}

// failure is one failed line of the summary.
type failure struct {
	line int64
	text string
}

func runImport(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := failWith(stderr, "credsign import")
	f, err := parseImportFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return fail(exitUsage, err)
	}
	token, err := f.settings.Token()
	if err != nil {
		return fail(exitUsage, err)
	}
	in, total, closeIn, err := openImportFile(f.file, stdin)
	if err != nil {
		return fail(exitUsage, err)
	}
	defer closeIn()
	br := bufio.NewReaderSize(in, 64<<10)
	var src *csvSource
	f.read = "NDJSON"
	if format := pickImportFormat(f, br); format != "ndjson" {
		f.read = describeFormat(format)
		if src, err = newCSVSource(br, f, format); err != nil {
			return fail(exitUsage, fmt.Errorf("%s: %w", f.file, err))
		}
	} else if len(f.params) > 0 || len(f.labels) > 0 || f.idTemplate != "" {
		return fail(exitUsage, fmt.Errorf("%s: the first line is not the header of a console CSV file (%s); give --format", f.file, strings.Join(consolecsv.Formats(), ", ")))
	}
	var tokensOut *os.File
	if f.tokensOut != "" {
		// A new file only: tokens from an earlier run are not overwritten.
		tokensOut, err = os.OpenFile(f.tokensOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail(exitUsage, fmt.Errorf("--tokens-out: %w", err))
		}
		defer tokensOut.Close()
	}
	t := &importTally{lineOf: func(n int64) int64 { return n + f.fromLine - 1 }}
	var body io.Reader = br
	if src != nil {
		// Results name lines of the NDJSON sent; src maps them to CSV lines.
		t.csv, t.lineOf = true, src.csvLine
		body = src.start(f.fromLine)
		defer src.stop()
	} else {
		if err := skipLines(br, f.fromLine-1); err != nil {
			return fail(exitError, fmt.Errorf("%s: %w", f.file, err))
		}
		if total > 0 {
			total -= f.fromLine - 1
		}
	}

	client, err := apiclient.NewClient(f.url, apiclient.WithHTTPClient(&http.Client{}),
		apiclient.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
	if err != nil {
		return fail(exitUsage, err)
	}
	mode := apiclient.ImportDevicesParamsMode(f.mode)
	params := &apiclient.ImportDevicesParams{Mode: &mode, Tokens: &f.tokens}
	stopProgress := startProgress(stderr, t, total)
	start := time.Now()
	res, err := client.ImportDevicesWithBody(ctx, params, "application/x-ndjson", body)
	if err != nil {
		stopProgress()
		return fail(exitError, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		stopProgress()
		return fail(exitError, fmt.Errorf("the server refused the import: %s", problemText(res)))
	}
	var tw tokenWriter
	if tokensOut != nil {
		tw = newTokenWriter(tokensOut, f.tokensFormat)
	}
	readResults(res.Body, t, tw)
	if src != nil {
		src.stop()
		src.merge(t)
	}
	stopProgress()
	if tw != nil {
		if err := tw.close(); err != nil {
			fmt.Fprintf(stderr, "credsign import: writing --tokens-out: %v\n", err)
			t.cut = "the tokens file could not be written"
		}
	}
	printImportSummary(stdout, f, t, time.Since(start))
	if t.failed > 0 || t.cut != "" {
		return exitError
	}
	return exitOK
}

// openImportFile opens FILE (or stdin for "-") and counts its lines when
// it is a regular file (0 when unknown).
func openImportFile(name string, stdin io.Reader) (io.Reader, int64, func(), error) {
	if name == "-" {
		return stdin, 0, func() {}, nil
	}
	fh, err := os.Open(name)
	if err != nil {
		return nil, 0, nil, err
	}
	st, err := fh.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return fh, 0, func() { fh.Close() }, nil
	}
	n, err := countLines(fh)
	if err != nil {
		fh.Close()
		return nil, 0, nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		fh.Close()
		return nil, 0, nil, err
	}
	return fh, n, func() { fh.Close() }, nil
}

// countLines counts the lines of r (a last line without a newline too).
func countLines(r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	last := byte('\n')
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += int64(bytes.Count(buf[:k], []byte{'\n'}))
			last = buf[k-1]
		}
		if errors.Is(err, io.EOF) {
			if last != '\n' {
				n++
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// skipLines reads past n lines of br, however long they are.
func skipLines(br *bufio.Reader, n int64) error {
	for ; n > 0; n-- {
		for {
			_, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				return errors.New("--from-line is past the end of the file")
			}
			if err != nil {
				return err
			}
			break
		}
	}
	return nil
}

// readResults reads the answer's lines; t.lineOf turns their line numbers
// into lines of the file.
func readResults(body io.Reader, t *importTally, tw tokenWriter) {
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l apiclient.ImportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.cut = "the server's answer could not be read"
			return
		}
		if l.Summary != nil {
			t.summary = l.Summary
			if l.Problem != nil {
				t.cut = fmt.Sprintf("the server stopped reading: %d %s", l.Problem.Status, deref(l.Problem.Detail))
			}
			return
		}
		if l.Line == nil || l.Status == nil {
			continue
		}
		line := t.lineOf(*l.Line)
		if t.csv {
			t.answered.Store(line)
		} else {
			t.answered.Store(*l.Line)
		}
		switch {
		case *l.Status == http.StatusCreated:
			t.created++
		case l.Existing != nil && *l.Existing:
			t.existing++
		case *l.Status == http.StatusOK:
			t.updated++
		default:
			t.failed++
			if len(t.failures) < maxFailuresShown {
				t.failures = append(t.failures, failure{line, failureText(line, l)})
			}
		}
		if l.Token != nil && l.Id != nil {
			t.tokens++
			if tw != nil {
				tw.write(*l.Id, deref(l.TokenId), *l.Token)
			}
		}
	}
	if t.summary == nil && t.cut == "" {
		t.cut = "the answer ended early"
		if err := sc.Err(); err != nil {
			t.cut += ": " + err.Error()
		}
	}
}

func failureText(line int64, l apiclient.ImportLine) string {
	s := fmt.Sprintf("line %d", line)
	if l.Id != nil {
		s += " (" + *l.Id + ")"
	}
	s += fmt.Sprintf(": %d", *l.Status)
	if p := l.Problem; p != nil {
		s += " " + deref(p.Detail)
		if p.Errors != nil {
			var fields []string
			for _, e := range *p.Errors {
				fields = append(fields, e.Field+": "+e.Reason)
			}
			if len(fields) > 0 {
				s += " (" + strings.Join(fields, "; ") + ")"
			}
		}
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// problemText is the status and detail of a refused request.
func problemText(res *http.Response) string {
	var p struct{ Detail string }
	_ = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&p)
	if p.Detail == "" {
		return res.Status
	}
	return res.Status + ": " + p.Detail
}

func printImportSummary(w io.Writer, f importFlags, t *importTally, took time.Duration) {
	lines := t.answered.Load()
	if t.summary != nil {
		lines = t.summary.Lines
	}
	rate := 0.0
	if took > 0 {
		rate = float64(t.created+t.updated) / took.Seconds()
	}
	unit := "lines"
	if t.csv {
		// Every row was created, updated or failed (here or on the server).
		unit = "rows"
		lines = t.created + t.updated + t.failed
	}
	existing := ""
	if f.mode == "resume" {
		existing = fmt.Sprintf(", %d existing", t.existing)
	}
	fmt.Fprintf(w, "%s: %d %s from line %d: %d created, %d updated%s, %d failed, %d tokens (%.1fs, %.0f devices/s)\n",
		f.file, lines, unit, f.fromLine, t.created, t.updated, existing, t.failed, t.tokens, took.Seconds(), rate)
	fmt.Fprintf(w, "read %s as %s; mode %s\n", f.file, f.read, f.mode)
	if t.tokens > 0 && f.tokensOut != "" {
		fmt.Fprintf(w, "tokens written to %s (%s)\n", f.tokensOut, f.tokensFormat)
	}
	if len(t.failures) > 0 {
		fmt.Fprintf(w, "failed lines (first %d of %d):\n", len(t.failures), t.failed)
		for _, s := range t.failures {
			fmt.Fprintln(w, "  "+s.text)
		}
	}
	if t.cut != "" {
		resume := f.fromLine + t.answered.Load()
		if t.csv {
			resume = max(f.fromLine, t.answered.Load()+1)
		}
		tokens := ""
		switch {
		case f.tokensOut != "":
			tokens = " --tokens-out NEW-FILE"
		case f.tokens:
			tokens = " --tokens"
		}
		fmt.Fprintf(w, "the import stopped early (%s); resume with --mode resume%s --from-line %d\n", t.cut, tokens, resume)
	}
}

// startProgress reports progress on stderr until the returned func is
// called: a line redrawn in place on a terminal, a plain line every 5 s
// otherwise.
func startProgress(stderr io.Writer, t *importTally, total int64) func() {
	tty := false
	if fh, ok := stderr.(*os.File); ok {
		if st, err := fh.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := 5 * time.Second
	if tty {
		every = 250 * time.Millisecond
	}
	start := time.Now()
	done := make(chan struct{})
	stopped := make(chan struct{})
	report := func(end string) {
		n := t.answered.Load()
		rate := float64(n) / time.Since(start).Seconds()
		of := ""
		if total > 0 {
			of = fmt.Sprintf("/%d (%d%%)", total, n*100/max(total, 1))
		}
		prefix := ""
		if tty {
			prefix = "\r"
		}
		fmt.Fprintf(stderr, "%simport: %d%s lines, %.0f/s%s", prefix, n, of, rate, end)
	}
	go func() {
		defer close(stopped)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if tty {
					report("\n")
				}
				return
			case <-tick.C:
				if tty {
					report("\033[K")
				} else {
					report("\n")
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// tokenWriter writes minted tokens for a factory to flash.
type tokenWriter interface {
	write(id, tokenID, token string)
	close() error
}

func newTokenWriter(fh *os.File, format string) tokenWriter {
	bw := bufio.NewWriter(fh)
	if format == "ndjson" {
		return &ndjsonTokens{fh: fh, bw: bw, enc: json.NewEncoder(bw)}
	}
	cw := csv.NewWriter(bw)
	_ = cw.Write([]string{"id", "token"})
	return &csvTokens{fh: fh, bw: bw, cw: cw}
}

type csvTokens struct {
	fh *os.File
	bw *bufio.Writer
	cw *csv.Writer
}

func (c *csvTokens) write(id, _, token string) { _ = c.cw.Write([]string{id, token}) }

func (c *csvTokens) close() error {
	c.cw.Flush()
	return errors.Join(c.cw.Error(), c.bw.Flush(), c.fh.Sync())
}

type ndjsonTokens struct {
	fh  *os.File
	bw  *bufio.Writer
	enc *json.Encoder
	err error
}

func (n *ndjsonTokens) write(id, tokenID, token string) {
	if n.err == nil {
		n.err = n.enc.Encode(map[string]string{"id": id, "tokenId": tokenID, "token": token})
	}
}

func (n *ndjsonTokens) close() error {
	return errors.Join(n.err, n.bw.Flush(), n.fh.Sync())
}
