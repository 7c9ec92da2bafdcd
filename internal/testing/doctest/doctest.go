// Package doctest finds the shell blocks a Markdown document tells its reader
// to run, and checks a block's output against the output the document shows.
// The doc test of this package (doctest_linux_test.go) runs every such block
// of README.md and docs/*.md.
//
// A fenced block whose info string is sh, bash or shell is run. Blocks of
// other languages are not; json, text, console and unlabelled blocks are
// output. An HTML comment on the line before a fence (blank lines between are
// allowed) changes that, and one anywhere in the file marks what the whole
// file needs:
//
//	<!-- doctest: skip (REASON) -->  the next shell block is not run; REASON is required
//	<!-- doctest: output -->         the next block is the output of the last shell block run
//	<!-- doctest: needs vault -->    the file's blocks need a Vault binary (or mosquitto)
//
// A json output block is compared by shape with the last JSON value the shell
// block printed on standard output: the same object keys, the same kinds of
// values, RFC 3339 times where it shows them. Any other output block is a list
// of lines, each of which must match a line of the output, in order, with "…"
// standing for any text.
package doctest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Block is one fenced code block of a document.
type Block struct {
	// Line is the 1-based line of the opening fence.
	Line int
	// Lang is the first word of the info string, lower case ("" for none).
	Lang string
	// Code is the block's content, one "\n"-terminated line per line.
	Code string
	// Run is true for a shell block the reader is told to run.
	Run bool
	// Skip is the reason given for not running a shell block ("" to run it).
	Skip string
	// Output is set on a block that shows the output of a shell block: that
	// block is Blocks[Output-1] of the same Doc (0 for none).
	Output int
}

// Doc is what a document asks of the doc test.
type Doc struct {
	// Blocks are the fenced blocks, in order.
	Blocks []Block
	// Needs names what the file's blocks need besides a shell and the
	// credsign binaries: "vault", "mosquitto".
	Needs []string
}

// Known requirements of <!-- doctest: needs NAME -->.
var knownNeeds = map[string]bool{"vault": true, "mosquitto": true}

var (
	markerRE = regexp.MustCompile(`^\s*<!--\s*doctest:\s*(.*?)\s*-->\s*$`)
	skipRE   = regexp.MustCompile(`^skip\s*\((.*)\)$`)
	fenceRE  = regexp.MustCompile("^( *)(```+|~~~+)\\s*([^`\\s]*)[^`]*$")
)

// runnable reports whether a block of this language is run.
func runnable(lang string) bool {
	return lang == "sh" || lang == "bash" || lang == "shell"
}

// Parse reads a Markdown document. A malformed doctest marker (an unknown
// one, a skip without a reason, a marker that is not followed by a block it
// fits) or an unclosed fence is an error naming its line.
func Parse(src []byte) (*Doc, error) {
	doc := &Doc{}
	lines := strings.SplitAfter(string(src), "\n")
	type pending struct {
		line int
		skip string // reason, for a skip marker
		out  bool
	}
	var marker *pending
	lastRun := 0 // 1-based index in doc.Blocks of the last shell block
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], "\r\n")
		if m := markerRE.FindStringSubmatch(line); m != nil {
			if marker != nil {
				return nil, fmt.Errorf("line %d: doctest marker follows the one on line %d without a block between", i+1, marker.line)
			}
			word := m[1]
			switch {
			case word == "output":
				marker = &pending{line: i + 1, out: true}
			case strings.HasPrefix(word, "skip"):
				sm := skipRE.FindStringSubmatch(word)
				if sm == nil || strings.TrimSpace(sm[1]) == "" {
					return nil, fmt.Errorf("line %d: a skip needs its reason: <!-- doctest: skip (needs a Docker engine) -->", i+1)
				}
				marker = &pending{line: i + 1, skip: strings.TrimSpace(sm[1])}
			case strings.HasPrefix(word, "needs "):
				name := strings.TrimSpace(strings.TrimPrefix(word, "needs "))
				if !knownNeeds[name] {
					return nil, fmt.Errorf("line %d: doctest cannot provide %q (it knows vault and mosquitto)", i+1, name)
				}
				doc.Needs = append(doc.Needs, name)
			default:
				return nil, fmt.Errorf("line %d: unknown doctest marker %q (skip (REASON), output, needs NAME)", i+1, word)
			}
			continue
		}
		fm := fenceRE.FindStringSubmatch(line)
		if fm == nil {
			if marker != nil && strings.TrimSpace(line) != "" {
				return nil, fmt.Errorf("line %d: the doctest marker must be followed by a fenced block", marker.line)
			}
			continue
		}
		indent, fence, lang := len(fm[1]), fm[2], strings.ToLower(fm[3])
		b := Block{Line: i + 1, Lang: lang, Run: runnable(lang)}
		var code strings.Builder
		closed := false
		for i++; i < len(lines); i++ {
			l := strings.TrimRight(lines[i], "\r\n")
			if t := strings.TrimLeft(l, " "); strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]+" ") == "" && len(l)-len(t) < 4+indent {
				closed = true
				break
			}
			// Strip the fence's indentation, as CommonMark does.
			for n := 0; n < indent && strings.HasPrefix(l, " "); n++ {
				l = l[1:]
			}
			code.WriteString(l + "\n")
		}
		if !closed {
			return nil, fmt.Errorf("line %d: fenced block is never closed", b.Line)
		}
		b.Code = code.String()
		if marker != nil {
			switch {
			case marker.out && b.Run:
				return nil, fmt.Errorf("line %d: an output marker must precede an output block (json, text, console), not a shell block", marker.line)
			case marker.out && lastRun == 0:
				return nil, fmt.Errorf("line %d: an output marker with no shell block before it", marker.line)
			case marker.out:
				b.Output = lastRun
			case !b.Run:
				return nil, fmt.Errorf("line %d: a skip marker must precede a shell block (sh, bash, shell), not %q", marker.line, lang)
			default:
				b.Skip = marker.skip
			}
			marker = nil
		}
		doc.Blocks = append(doc.Blocks, b)
		if b.Run {
			lastRun = len(doc.Blocks)
		}
	}
	if marker != nil {
		return nil, fmt.Errorf("line %d: the doctest marker must be followed by a fenced block", marker.line)
	}
	return doc, nil
}

// CheckOutput compares what a shell block printed on standard output with
// the output block want. It returns nil when they agree, else an error
// saying where they differ.
func CheckOutput(want Block, got []byte) error {
	if want.Lang == "json" {
		return checkJSON(want.Code, got)
	}
	return checkLines(want.Code, got)
}

// checkJSON compares the shape of the last JSON value in got with want.
func checkJSON(want string, got []byte) error {
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		return fmt.Errorf("the expected output is not one JSON value: %w", err)
	}
	g, ok := lastJSON(got)
	if !ok {
		return fmt.Errorf("the block printed no JSON value on its last lines")
	}
	if diffs := shape("$", w, g, nil); len(diffs) > 0 {
		return fmt.Errorf("the output differs from the document's: %s", strings.Join(diffs, "; "))
	}
	return nil
}

// lastJSON finds the last JSON value of out that starts at the beginning of
// a line and runs to the end of out.
func lastJSON(out []byte) (any, bool) {
	out = bytes.TrimRight(out, " \t\r\n")
	for end := len(out); end >= 0; {
		start := bytes.LastIndexByte(out[:end], '\n') + 1
		if t := bytes.TrimLeft(out[start:], " \t"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			var v any
			if err := json.Unmarshal(t, &v); err == nil {
				return v, true
			}
		}
		end = start - 1
	}
	return nil, false
}

// kind names a decoded JSON value's kind.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	default:
		return "object"
	}
}

// shape appends to diffs every place where got differs from want in keys,
// kinds, or an RFC 3339 time where want has one.
func shape(path string, want, got any, diffs []string) []string {
	if kind(want) != kind(got) {
		return append(diffs, fmt.Sprintf("%s is %s %s, the document shows %s", path, kind(got), brief(got), kind(want)))
	}
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		var missing, extra []string
		for k := range w {
			if _, ok := g[k]; !ok {
				missing = append(missing, k)
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				extra = append(extra, k)
			}
		}
		sort.Strings(missing)
		sort.Strings(extra)
		if len(missing) > 0 {
			diffs = append(diffs, fmt.Sprintf("%s lacks %s", path, strings.Join(missing, ", ")))
		}
		if len(extra) > 0 {
			diffs = append(diffs, fmt.Sprintf("%s has %s, which the document does not show", path, strings.Join(extra, ", ")))
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if gv, ok := g[k]; ok {
				diffs = shape(path+"."+k, w[k], gv, diffs)
			}
		}
	case []any:
		g := got.([]any)
		if len(w) > 0 && len(g) == 0 {
			return append(diffs, fmt.Sprintf("%s is empty, the document shows %d elements", path, len(w)))
		}
		for i, gv := range g {
			if len(w) == 0 {
				break
			}
			diffs = shape(fmt.Sprintf("%s[%d]", path, i), w[min(i, len(w)-1)], gv, diffs)
		}
	case string:
		if isTime(w) && !isTime(got.(string)) {
			diffs = append(diffs, fmt.Sprintf("%s is %q, the document shows an RFC 3339 time", path, got))
		}
	}
	return diffs
}

// brief renders a value for an error message, cut short.
func brief(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

func isTime(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// checkLines checks that each non-blank line of want matches a line of got,
// in order, "…" matching any text and surrounding blanks ignored.
func checkLines(want string, got []byte) error {
	gotLines := strings.Split(string(got), "\n")
	next := 0
	for _, w := range strings.Split(want, "\n") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		parts := strings.Split(w, "…")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		re := regexp.MustCompile(`^\s*` + strings.Join(parts, ".*") + `\s*$`)
		found := false
		for ; next < len(gotLines); next++ {
			if re.MatchString(gotLines[next]) {
				found = true
				next++
				break
			}
		}
		if !found {
			return fmt.Errorf("no line of the output (after the ones matched before it) matches the document's %q", w)
		}
	}
	return nil
}
