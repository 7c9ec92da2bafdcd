package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/internal/consolecsv"
)

// keyValue is a flag.Func adding k=v to m.
func keyValue(m map[string]string, flagName string) func(string) error {
	return func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("%s wants k=v, not %q", flagName, s)
		}
		if _, dup := m[k]; dup {
			return fmt.Errorf("%s %s given twice", flagName, k)
		}
		m[k] = v
		return nil
	}
}

// pickImportFormat is --format, or the console CSV format whose header is
// the first line of the file, or else ndjson.
func pickImportFormat(f importFlags, br *bufio.Reader) string {
	if f.format != "" {
		return f.format
	}
	if name := consolecsv.Detect(consolecsv.FirstLine(br)); name != "" {
		return name
	}
	return "ndjson"
}

// describeFormat names a console CSV format for the summary: its name and
// the cloud and console it comes from.
func describeFormat(format string) string {
	for _, f := range registry.ConsoleFormats() {
		if f.Name == format {
			title := f.Cloud
			if c, ok := registry.LookupCloud(f.Cloud); ok {
				title = c.Title
			}
			return fmt.Sprintf("console CSV %s (%s, cloud %s)", format, title, f.Cloud)
		}
	}
	return "console CSV " + format
}

// csvSource turns a console CSV file into the NDJSON body of an import,
// keeping which CSV line each NDJSON line came from and the rows refused
// before sending.
type csvSource struct {
	rd       *consolecsv.Reader
	pr       *io.PipeReader
	done     chan struct{}
	stopOnce sync.Once

	mu       sync.Mutex
	lines    []int64 // CSV line of NDJSON line i+1
	failed   int64
	failures []failure // the first maxFailuresShown
	err      error     // a read error that ended the file
}

func newCSVSource(r io.Reader, f importFlags, format string) (*csvSource, error) {
	opts := consolecsv.Options{Format: format, IDTemplate: f.idTemplate}
	if len(f.labels) > 0 {
		opts.Labels = f.labels
	}
	cloud := strings.TrimSuffix(format, "-csv")
	params, err := typedParams(cloud, consolecsv.ColumnParams(format), f.params)
	if err != nil {
		return nil, err
	}
	opts.Params = params
	rd, err := consolecsv.NewReader(r, opts)
	if err != nil {
		return nil, err
	}
	return &csvSource{rd: rd}, nil
}

// typedParams gives each --param value the type its cloud's param has;
// those standing for a column of the file are text.
func typedParams(cloudName string, columns []string, raw map[string]string) (map[string]any, error) {
	c, ok := registry.LookupCloud(cloudName)
	if !ok {
		return nil, fmt.Errorf("no cloud %q", cloudName)
	}
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		if slices.Contains(columns, k) {
			out[k] = v
			continue
		}
		i := slices.IndexFunc(c.Params, func(p cloud.ParamSpec) bool { return p.Name == k })
		if i < 0 {
			return nil, fmt.Errorf("--param %s: %s has no such param (see credsign clouds)", k, cloudName)
		}
		switch c.Params[i].Type {
		case cloud.TypeInteger:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("--param %s: %q is not an integer", k, v)
			}
			out[k] = n
		case cloud.TypeBoolean:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("--param %s: %q is not true or false", k, v)
			}
			out[k] = b
		case cloud.TypeObject:
			var o map[string]any
			if err := json.Unmarshal([]byte(v), &o); err != nil {
				return nil, fmt.Errorf("--param %s: not a JSON object", k)
			}
			out[k] = o
		default:
			out[k] = v
		}
	}
	return out, nil
}

// start sends the rows from CSV line fromLine on through the returned
// reader, one NDJSON line each; malformed rows are kept, not sent.
func (s *csvSource) start(fromLine int64) io.Reader {
	pr, pw := io.Pipe()
	s.pr, s.done = pr, make(chan struct{})
	go func() {
		defer close(s.done)
		bw := bufio.NewWriterSize(pw, 64<<10)
		var err error
		for {
			row, rerr := s.rd.Next()
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				s.mu.Lock()
				s.err = rerr
				s.mu.Unlock()
				break
			}
			if row.Line < fromLine {
				continue
			}
			s.mu.Lock()
			if row.Err != nil {
				s.failed++
				if len(s.failures) < maxFailuresShown {
					s.failures = append(s.failures, failure{row.Line, row.Err.Error()})
				}
				s.mu.Unlock()
				continue
			}
			s.lines = append(s.lines, row.Line)
			s.mu.Unlock()
			if _, err = bw.Write(row.JSON); err == nil {
				err = bw.WriteByte('\n')
			}
			if err != nil {
				break // the request ended; the reader side was closed
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		_ = pw.CloseWithError(err)
	}()
	return pr
}

// stop ends the sending (if the answer ended first) and waits for it.
func (s *csvSource) stop() {
	s.stopOnce.Do(func() {
		if s.pr == nil {
			return
		}
		_ = s.pr.CloseWithError(errors.New("the import ended"))
		<-s.done
	})
}

// csvLine is the CSV line NDJSON line n came from.
func (s *csvSource) csvLine(n int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 1 || n > int64(len(s.lines)) {
		return 0
	}
	return s.lines[n-1]
}

// merge adds the rows refused before sending to t, failures in line order.
func (s *csvSource) merge(t *importTally) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.failed += s.failed
	t.rows += s.failed
	t.failures = append(t.failures, s.failures...)
	slices.SortStableFunc(t.failures, func(a, b failure) int { return int(a.line - b.line) })
	t.failures = t.failures[:min(len(t.failures), maxFailuresShown)]
	if s.err != nil && t.cut == "" {
		t.cut = "reading the file: " + s.err.Error()
	}
}
