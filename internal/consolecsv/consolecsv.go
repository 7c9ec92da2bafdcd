// Package consolecsv reads the CSV files the Alibaba Cloud IoT Platform,
// Tencent Cloud IoT Hub / IoT Explorer and Huawei Cloud IoTDA consoles
// produce or accept when devices are created in batch, and turns each row
// into a device document of the shape POST /v1/imports takes (one NDJSON
// line), lazily, one row at a time. A malformed row becomes a RowError
// naming its CSV line; the secret of a row never appears in any error.
//
// The layouts and their sources are in the clouds' packages (cloud.ConsoleLayout) and docs/import.md.
package consolecsv

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"
)

// Options says how rows become devices.
type Options struct {
	// Format is a format name ("aliyun-csv", …); empty detects it from
	// the header.
	Format string
	// Params are added to every device's params (values already typed as
	// JSON values); they fill what the file lacks. A param that is also a
	// column of the file is refused.
	Params map[string]any
	// Labels are given to every device.
	Labels map[string]string
	// IDTemplate makes each device id from its params: "{name}" is
	// replaced by the param name's value, "{line}" by the row's CSV line.
	// Empty means the format's default.
	IDTemplate string
}

// Row is one CSV row: a device document, or the reason it is not one.
type Row struct {
	// Line is the CSV line the row starts on (the header is line 1).
	Line int64
	// ID is the device id, when the row got as far as having one.
	ID string
	// JSON is the device document (without a trailing newline) when Err
	// is nil.
	JSON []byte
	// Err says why the row is not a device.
	Err *RowError
}

// RowError is a malformed row. Its text names the line and what is wrong,
// never the row's secret.
type RowError struct {
	Line   int64
	ID     string
	Reason string
}

func (e *RowError) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("line %d (%s): %s", e.Line, e.ID, e.Reason)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// Reader reads rows from a console CSV file.
type Reader struct {
	format  *Format
	csv     *csv.Reader
	cols    int
	secret  int            // index of the secret column
	params  map[string]int // param name -> column index
	extra   map[string]any // Options.Params
	labels  map[string]string
	idParts []idPart
	seen    map[string]int64 // device id -> line first seen
	done    bool
	gbk     bool // the file is in GB18030 (GBK), decoded as it is read
}

// idPart is a literal (param == "") or a placeholder of an id template.
type idPart struct {
	lit, param string
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// NewReader reads the header of r and returns a Reader for its rows. It
// fails, naming what is wrong, when the header does not fit the format
// (or no format, or more than one, fits it when Options.Format is
// empty), when a required param has neither a column nor a value in
// Options.Params, or when the id template is invalid.
func NewReader(r io.Reader, opts Options) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, err := br.Peek(3); err == nil && string(b) == "\ufeff" {
		_, _ = br.Discard(3)
	}
	var src io.Reader = br
	head := []byte(FirstLine(br))
	gbk := !utf8.Valid(head) && isGB18030(head)
	if gbk {
		// Excel on a Chinese Windows saves "CSV" in the GBK code page.
		src = transform.NewReader(br, simplifiedchinese.GB18030.NewDecoder())
	}
	cr := csv.NewReader(src)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("the file is empty: a header row is needed")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the header row: %w", err)
	}
	if !utf8.ValidString(strings.Join(header, "")) {
		return nil, errors.New("the header row is neither UTF-8 nor GBK: save the file as \"CSV UTF-8\"")
	}
	folded := make([]string, len(header))
	for i, h := range header {
		folded[i] = fold(h)
	}
	f, err := pickFormat(opts.Format, folded)
	if err != nil {
		return nil, err
	}
	rd := &Reader{format: f, csv: cr, cols: len(header), secret: -1, params: map[string]int{}, gbk: gbk,
		extra: opts.Params, labels: opts.Labels, seen: map[string]int64{}}
	cr.FieldsPerRecord = len(header)
	for i, h := range folded {
		switch {
		case slices.Contains(f.Secret.Names, h):
			if rd.secret >= 0 {
				return nil, fmt.Errorf("%s: columns %d and %d both hold the secret", f.Name, rd.secret+1, i+1)
			}
			rd.secret = i
		default:
			for _, c := range f.Params {
				if slices.Contains(c.Names, h) {
					if j, ok := rd.params[c.Param]; ok {
						return nil, fmt.Errorf("%s: columns %d and %d both hold %s", f.Name, j+1, i+1, c.Param)
					}
					rd.params[c.Param] = i
				}
			}
		}
	}
	if rd.secret < 0 {
		return nil, fmt.Errorf("%s: no secret column (one of %s)", f.Name, strings.Join(f.Secret.Names, ", "))
	}
	for name := range opts.Params {
		if _, ok := rd.params[name]; ok {
			return nil, fmt.Errorf("%s: %s is a column of the file; it cannot also be given as a param", f.Name, name)
		}
	}
	for _, p := range f.Required {
		if _, ok := rd.params[p]; ok {
			continue
		}
		if _, ok := opts.Params[p]; ok {
			continue
		}
		if p == "deviceId" && f.Derive != nil {
			_, hasNode := rd.params["nodeId"]
			_, hasProduct := rd.params["productId"]
			_, givenProduct := opts.Params["productId"]
			if hasNode && (hasProduct || givenProduct) {
				continue
			}
		}
		return nil, fmt.Errorf("%s: no %s column: give it as a param (%s=…)", f.Name, p, p)
	}
	tmpl := opts.IDTemplate
	if tmpl == "" {
		tmpl = f.DefaultID
	}
	if rd.idParts, err = parseTemplate(tmpl); err != nil {
		return nil, err
	}
	return rd, nil
}

// pickFormat returns the named format, or the only one whose signature
// columns are in the header.
func pickFormat(name string, folded []string) (*Format, error) {
	if name != "" {
		for _, f := range formats {
			if f.Name == name {
				return f, nil
			}
		}
		return nil, fmt.Errorf("unknown format %q (one of %s)", name, strings.Join(Formats(), ", "))
	}
	var fits []*Format
	for _, f := range formats {
		if slices.ContainsFunc(f.Signature, func(s string) bool { return slices.Contains(folded, s) }) {
			fits = append(fits, f)
		}
	}
	switch len(fits) {
	case 1:
		return fits[0], nil
	case 0:
		return nil, ErrUnknownHeader
	default:
		var names []string
		for _, f := range fits {
			names = append(names, f.Name)
		}
		return nil, fmt.Errorf("the header fits %s: choose one with a format", strings.Join(names, " and "))
	}
}

// ErrUnknownHeader is returned by NewReader without a format when the
// header is not one of a known console file.
var ErrUnknownHeader = errors.New("the header row is not that of a known console CSV file")

// FirstLine returns the first line of br (without its newline, at most
// br.Size() bytes) without consuming it, reading no further than needed.
func FirstLine(br *bufio.Reader) string {
	for n := 1; ; n = min(br.Buffered()+1, br.Size()) {
		_, err := br.Peek(n) // blocks until n bytes are there
		b, _ := br.Peek(br.Buffered())
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return string(b[:i])
		}
		if err != nil || len(b) >= br.Size() {
			return string(b)
		}
	}
}

// isGB18030 reports whether b, not UTF-8, is text in GB18030 (of which
// GBK is a part): it decodes without a replacement character.
func isGB18030(b []byte) bool {
	d, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b)
	return err == nil && utf8.Valid(d) && !bytes.ContainsRune(d, utf8.RuneError)
}

// Detect reports the format whose header the first line of a file has
// (UTF-8, or GB18030 as Excel on a Chinese Windows saves it), or "" when
// none does unambiguously.
func Detect(firstLine string) string {
	if b := []byte(firstLine); !utf8.Valid(b) && isGB18030(b) {
		d, _ := simplifiedchinese.GB18030.NewDecoder().Bytes(b)
		firstLine = string(d)
	}
	rec, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(firstLine, "\ufeff"))).Read()
	if err != nil {
		return ""
	}
	folded := make([]string, len(rec))
	for i, h := range rec {
		folded[i] = fold(h)
	}
	f, err := pickFormat("", folded)
	if err != nil {
		return ""
	}
	return f.Name
}

// Format is the format the Reader reads.
func (r *Reader) Format() *Format { return r.format }

func parseTemplate(s string) ([]idPart, error) {
	var parts []idPart
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			if strings.IndexByte(s, '}') >= 0 {
				return nil, fmt.Errorf("id template: a '}' without its '{'")
			}
			parts = append(parts, idPart{lit: s})
			break
		}
		if strings.IndexByte(s[:i], '}') >= 0 {
			return nil, fmt.Errorf("id template: a '}' without its '{'")
		}
		if i > 0 {
			parts = append(parts, idPart{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("id template: a '{' without its '}'")
		}
		name := s[i+1 : i+j]
		if name == "" || strings.ContainsAny(name, "{") {
			return nil, fmt.Errorf("id template: %q is not a placeholder", s[i:i+j+1])
		}
		if name == "secret" {
			return nil, errors.New("id template: the secret cannot be part of the id")
		}
		parts = append(parts, idPart{param: name})
		s = s[i+j+1:]
	}
	if len(parts) == 0 {
		return nil, errors.New("id template: empty")
	}
	return parts, nil
}

// Next returns the next row, or io.EOF after the last. A row that is not a
// device comes back with Err set; reading goes on after it. An error that
// is not CSV (a stray or unclosed quote) comes back as a row error too,
// naming the lines it took.
func (r *Reader) Next() (Row, error) {
	for {
		if r.done {
			return Row{}, io.EOF
		}
		rec, err := r.csv.Read()
		if errors.Is(err, io.EOF) {
			r.done = true
			return Row{}, io.EOF
		}
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount):
			return rowErr(int64(pe.StartLine), "", fmt.Sprintf("%d fields, the header has %d", len(rec), r.cols)), nil
		case errors.As(err, &pe) && pe.Line > pe.StartLine:
			// A quoted field that does not close where it should runs on
			// over the next lines (to the end of the file when it never
			// closes): say which lines went with it.
			return rowErr(int64(pe.StartLine), "", fmt.Sprintf("not CSV: %v; lines %d to %d were read as this row", pe.Err, pe.StartLine, pe.Line)), nil
		case errors.As(err, &pe):
			return rowErr(int64(pe.StartLine), "", "not CSV: "+pe.Err.Error()), nil
		case err != nil:
			r.done = true
			return Row{}, fmt.Errorf("reading the CSV file: %w", err)
		}
		l, _ := r.csv.FieldPos(0)
		line := int64(l)
		if blank(rec) {
			continue
		}
		return r.row(line, rec), nil
	}
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func rowErr(line int64, id, reason string) Row {
	return Row{Line: line, ID: id, Err: &RowError{Line: line, ID: id, Reason: reason}}
}

// doc is one line of an import.
type doc struct {
	ID     string            `json:"id"`
	Cloud  string            `json:"cloud"`
	Params map[string]any    `json:"params"`
	Secret string            `json:"secret"`
	Labels map[string]string `json:"labels,omitempty"`
}

func (r *Reader) row(line int64, rec []string) Row {
	f := r.format
	for i, v := range rec {
		if !utf8.ValidString(v) {
			return rowErr(line, "", fmt.Sprintf("column %d is not UTF-8: save the file as \"CSV UTF-8\"", i+1))
		}
		if r.gbk && strings.ContainsRune(v, utf8.RuneError) {
			return rowErr(line, "", fmt.Sprintf("column %d is not GBK text like the header: save the file as \"CSV UTF-8\"", i+1))
		}
	}
	vals := map[string]string{}
	for name, i := range r.params {
		vals[name] = strings.TrimSpace(rec[i])
	}
	if f.Derive != nil {
		given := map[string]string{}
		for k, v := range vals {
			given[k] = v
		}
		for k, v := range r.extra {
			if s, ok := v.(string); ok && given[k] == "" {
				given[k] = s
			}
		}
		f.Derive(given)
		if vals["deviceId"] == "" && given["deviceId"] != "" {
			vals["deviceId"] = given["deviceId"]
		}
	}
	// Check the params in a fixed order, for stable messages.
	for _, c := range f.Params {
		v, ok := vals[c.Param]
		if !ok {
			continue
		}
		if v == "" {
			if slices.Contains(f.Required, c.Param) {
				return rowErr(line, "", "no "+c.Param)
			}
			delete(vals, c.Param)
			continue
		}
		if c.Check == nil {
			continue
		}
		if msg := c.Check(v); msg != "" {
			return rowErr(line, "", c.Param+" "+msg)
		}
	}
	for _, p := range f.Required {
		if _, ok := vals[p]; !ok {
			if _, ok := r.extra[p]; !ok {
				return rowErr(line, "", "no "+p)
			}
		}
	}
	id, reason := r.makeID(line, vals)
	if reason != "" {
		return rowErr(line, "", reason)
	}
	secret := rec[r.secret]
	if strings.TrimSpace(secret) == "" {
		return rowErr(line, id, "no secret")
	}
	if strings.IndexFunc(secret, unicode.IsControl) >= 0 {
		return rowErr(line, id, "the secret holds a control character")
	}
	if secret != strings.TrimSpace(secret) {
		return rowErr(line, id, "the secret starts or ends with a space")
	}
	if msg := f.SecretOK(secret); msg != "" {
		return rowErr(line, id, "the secret "+msg)
	}
	if first, ok := r.seen[id]; ok {
		return rowErr(line, id, fmt.Sprintf("the id is on line %d already", first))
	}
	r.seen[id] = line
	params := make(map[string]any, len(vals)+len(r.extra))
	for k, v := range r.extra {
		if !slices.Contains(f.Only, k) {
			params[k] = v
		}
	}
	for k, v := range vals {
		if !slices.Contains(f.Only, k) {
			params[k] = v
		}
	}
	b, err := json.Marshal(doc{ID: id, Cloud: f.Cloud, Params: params, Secret: secret, Labels: r.labels})
	if err != nil {
		// Every value is a string or came from the caller's typed params.
		return rowErr(line, id, "the device could not be written as JSON")
	}
	return Row{Line: line, ID: id, JSON: b}
}

// makeID fills the id template and folds the result to the device-id
// syntax: characters outside letters, digits and "._:-" become '_'.
func (r *Reader) makeID(line int64, vals map[string]string) (string, string) {
	var b strings.Builder
	for _, p := range r.idParts {
		switch {
		case p.param == "":
			b.WriteString(p.lit)
		case p.param == "line":
			fmt.Fprint(&b, line)
		default:
			v, ok := vals[p.param]
			if !ok {
				if x, ok2 := r.extra[p.param]; ok2 {
					v, ok = fmt.Sprint(x), true
				}
			}
			if !ok || v == "" {
				return "", "the id template needs " + p.param + ", which this row does not have"
			}
			b.WriteString(v)
		}
	}
	id := strings.Map(func(c rune) rune {
		if c < 128 && (unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("._:-", c)) {
			return c
		}
		return '_'
	}, b.String())
	if !validID.MatchString(id) {
		return "", fmt.Sprintf("the device id made by the id template is not valid (%d characters; at most 128, starting with a letter or digit)", utf8.RuneCountInString(id))
	}
	return id, ""
}
