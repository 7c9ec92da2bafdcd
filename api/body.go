package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/credsign/credsign/api/problem"
)

// maxBodyDepth is how deeply arrays and objects may nest in a request body.
// The deepest document of the contract (a device document's params) nests
// two levels; the limit leaves room and keeps the cost of refusing any body
// linear in its size (a schema validator's cost on deep nesting is not).
const maxBodyDepth = 8

// maxBodyMembers is how many members one object or array of a request body
// may have. The contract's largest containers (params, labels) allow 64;
// the schema validator names those limits itself, and this bound keeps it
// from walking (and quoting in its errors) a huge array or object.
const maxBodyMembers = 256

// maxBodyValues is how many values (members of objects and elements of
// arrays, at every level) a whole request body, or an import line, may
// hold. The contract's largest document (a device with its few params, a
// claims object and 64 labels) holds under 200; a body within the depth
// and width limits could otherwise hold some 30,000 in 64 KiB, and what
// the schema validator and the decoders spend on a document grows with
// them (an import of 2,000 refused lines of 6,200 members each took a
// server from 25 MB to 1 GB).
const maxBodyValues = 1024

// maxMemberName is the longest member name (in bytes, as sent) a body may
// use. The contract's names are under 64 bytes; problem documents quote
// names in their fields, and this keeps what they quote small.
const maxMemberName = 128

// scanned is what one pass over a request body (or an import line) found:
// the decoded document, as kin-openapi's JSON decoder gives it (objects as
// map[string]any, arrays as []any, numbers as json.Number), and what is
// wrong with it, each reported in this order of precedence by the callers.
type scanned struct {
	value any
	// syntax: the bytes are not one JSON document (json.Valid is false).
	syntax bool
	// badUTF8: a string holds bytes that are not UTF-8.
	badUTF8 bool
	// surrogate: a \u escape of a lone UTF-16 surrogate (encoding/json
	// turns it into U+FFFD, so a secret other than the one sent would be
	// stored).
	surrogate bool
	// limit is the first value over a limit, in document order: nesting
	// deeper than maxBodyDepth, more than maxBodyMembers in one container
	// or maxBodyValues in all, a member name longer than maxMemberName,
	// an object naming a member twice (parsers disagree on which wins).
	limit error
}

// problem is the refusal of a syntactically valid document with valid
// UTF-8 strings: a lone surrogate, else the first value over a limit.
func (sc *scanned) problem() error {
	if sc.surrogate {
		return problem.New(http.StatusBadRequest, "the request body is not valid UTF-8",
			problem.FieldError{Field: "body", Reason: "a \\u escape of a lone UTF-16 surrogate is not a character"})
	}
	return sc.limit
}

// scanJSON reads body once: it checks the JSON grammar, UTF-8, the \u
// escapes and the limits, and decodes the document. It stops at the first
// value over a limit (what it allocates is bounded by maxBodyValues
// whatever the body holds); then, as the grammar, UTF-8 and escapes take
// precedence, the refused body is checked for those apart. Its cost is
// linear in the body: a schema validator never sees a document over the
// limits.
func scanJSON(body []byte) scanned {
	s := scanner{b: body}
	s.ws()
	v, ok := s.value()
	if s.limit != nil {
		return scanned{syntax: !json.Valid(body), badUTF8: !utf8.Valid(body), surrogate: loneSurrogate(body), limit: s.limit}
	}
	if s.ws(); !ok || s.i != len(s.b) {
		return scanned{syntax: true}
	}
	return scanned{value: v, badUTF8: s.badUTF8, surrogate: s.surrogate}
}

// loneSurrogate reports whether the valid JSON document body holds a \u
// escape of a UTF-16 surrogate that is not half of a pair.
func loneSurrogate(body []byte) bool {
	for i := 0; i < len(body)-1; i++ {
		if body[i] != '\\' {
			continue
		}
		// In valid JSON a backslash is always inside a string and starts
		// an escape of two bytes (\n, \\, …) or six (\uXXXX).
		if body[i+1] != 'u' {
			i++
			continue
		}
		r, _ := hex4(body[i+2:])
		i += 5
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xDC00 || i+6 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' {
			return true // a low half first, or a high half alone
		}
		if lo, _ := hex4(body[i+3:]); lo < 0xDC00 || lo > 0xDFFF {
			return true
		}
		i += 6
	}
	return false
}

// scanner is the state of scanJSON.
type scanner struct {
	b []byte
	i int
	// frames are the containers open around the value being read.
	frames []scanFrame
	// limit, once set, stops the scan.
	values             int
	limit              error
	badUTF8, surrogate bool
	buf                []byte // for unescaping
}

// scanFrame is one open object or array.
type scanFrame struct {
	object bool
	// key is the name of the object's member being read, or of the last
	// one read while its next name is read ("" before the first).
	key string
	n   int // members (arrays: elements) so far
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// path names the value being read by the keys of the objects around it.
func (s *scanner) path() string {
	var p []string
	for _, f := range s.frames {
		if f.object && f.key != "" {
			p = append(p, f.key)
		}
	}
	if len(p) == 0 {
		return "body"
	}
	return strings.Join(p, ".")
}

// count counts one more member (a name, or an array's element) of the
// innermost container; false when that is over a limit.
func (s *scanner) count() bool {
	top := &s.frames[len(s.frames)-1]
	if top.n++; top.n > maxBodyMembers {
		s.limit = problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
			problem.FieldError{Field: s.path(), Reason: "more than " + strconv.Itoa(maxBodyMembers) + " members"})
		return false
	}
	if s.values++; s.values > maxBodyValues {
		s.limit = problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
			problem.FieldError{Field: s.path(), Reason: "the document holds more than " + strconv.Itoa(maxBodyValues) + " values in all"})
		return false
	}
	return true
}

// value reads one value; false on a syntax error or a value over a limit.
func (s *scanner) value() (any, bool) {
	if s.i >= len(s.b) {
		return nil, false
	}
	switch c := s.b[s.i]; c {
	case '{', '[':
		if len(s.frames) == maxBodyDepth {
			s.limit = problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
				problem.FieldError{Field: s.path(), Reason: "nested more than " + strconv.Itoa(maxBodyDepth) + " levels deep"})
			return nil, false
		}
		s.frames = append(s.frames, scanFrame{object: c == '{'})
		s.i++
		var v any
		var ok bool
		if c == '{' {
			v, ok = s.object()
		} else {
			v, ok = s.array()
		}
		s.frames = s.frames[:len(s.frames)-1]
		return v, ok
	case '"':
		return s.str()
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case 'n':
		return nil, s.literal("null")
	}
	return s.number()
}

func (s *scanner) literal(word string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return false
	}
	s.i += len(word)
	return true
}

func (s *scanner) object() (any, bool) {
	m := map[string]any{}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return m, true
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return nil, false
		}
		if !s.count() {
			return nil, false
		}
		k, ok := s.str()
		if !ok {
			return nil, false
		}
		name, _ := k.(string)
		top := &s.frames[len(s.frames)-1]
		if len(name) > maxMemberName {
			top.key = "" // name the object, not its previous member
			s.limit = problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
				problem.FieldError{Field: s.path(), Reason: "a member name longer than " + strconv.Itoa(maxMemberName) + " bytes"})
			return nil, false
		}
		if top.key = name; hasKey(m, name) {
			// Parsers disagree on which of two same-named members wins
			// (Go keeps the last): refuse instead of guessing.
			s.limit = problem.New(http.StatusBadRequest, "the request body names a member twice",
				problem.FieldError{Field: s.path(), Reason: "duplicate member name"})
			return nil, false
		}
		if s.ws(); s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, false
		}
		s.i++
		s.ws()
		v, ok := s.value()
		if !ok {
			return nil, false
		}
		m[name] = v
		end, ok := s.separator('}')
		if !ok {
			return nil, false
		}
		if end {
			return m, true
		}
	}
}

// separator reads what follows a member or an element: a comma (more
// follow: end is false) or closer (the container ends: end is true);
// anything else is a syntax error (ok is false).
func (s *scanner) separator(closer byte) (end, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.ws()
		return false, true
	case closer:
		s.i++
		return true, true
	}
	return false, false
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

func (s *scanner) array() (any, bool) {
	a := []any{}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return a, true
	}
	for {
		if !s.count() {
			return nil, false
		}
		v, ok := s.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		end, ok := s.separator(']')
		if !ok {
			return nil, false
		}
		if end {
			return a, true
		}
	}
}

// number reads a number as the JSON grammar has it.
func (s *scanner) number() (any, bool) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return nil, false
		}
	}
	return json.Number(s.b[start:s.i]), true
}

// digits reads one or more decimal digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// str reads a string (at its opening quote) and decodes it.
func (s *scanner) str() (any, bool) {
	s.i++
	start, escaped := s.i, false
	for {
		if s.i >= len(s.b) {
			return nil, false
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if !escaped {
				return string(raw), true
			}
			return s.unescape(raw), true
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return nil, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				r, ok := hex4(s.b[s.i+2:])
				if !ok {
					return nil, false
				}
				s.i += 6
				if !utf16.IsSurrogate(r) {
					continue
				}
				if r >= 0xDC00 || s.i+6 > len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
					s.surrogate = true // a low half first, or a high half alone
					continue
				}
				lo, ok := hex4(s.b[s.i+2:])
				if !ok {
					return nil, false
				}
				if lo < 0xDC00 || lo > 0xDFFF {
					s.surrogate = true
					continue
				}
				s.i += 6
			default:
				return nil, false
			}
		case c < 0x20:
			return nil, false
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n == 1 {
				s.badUTF8 = true
			}
			s.i += n
		}
	}
}

// hex4 decodes the four hex digits b starts with.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// unescape decodes the body of a string with escapes, valid as scanned.
func (s *scanner) unescape(raw []byte) string {
	b := s.buf[:0]
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, _ := hex4(raw[i+1:])
			i += 4
			if utf16.IsSurrogate(r) && i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo, _ := hex4(raw[i+3:]); lo >= 0xDC00 && lo <= 0xDFFF {
					r = utf16.DecodeRune(r, lo)
					i += 6
				}
			}
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError // as encoding/json; refused anyway
			}
			b = utf8.AppendRune(b, r)
		default: // '"', '\\', '/'
			b = append(b, raw[i])
		}
	}
	s.buf = b
	return string(b)
}
