package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"

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

// checkJSON refuses, before the body reaches the schema validator, what the
// validator and encoding/json would either spend unbounded effort on or
// silently change: nesting deeper than maxBodyDepth, more than
// maxBodyMembers in one container or maxBodyValues in all, a member name
// longer than maxMemberName, an object naming a member twice (parsers
// disagree on which wins), and a \u escape of a lone UTF-16 surrogate
// (encoding/json turns it into U+FFFD, so a secret other than the one sent
// would be stored). body must be valid JSON. It costs at most one pass over
// the body, stops at the first value over a limit, and its memory is
// bounded by maxBodyValues whatever the body holds.
func checkJSON(body []byte) error {
	if field, ok := loneSurrogate(body); ok {
		return problem.New(http.StatusBadRequest, "the request body is not valid UTF-8",
			problem.FieldError{Field: field, Reason: "a \\u escape of a lone UTF-16 surrogate is not a character"})
	}
	type frame struct {
		object  bool
		wantKey bool
		key     string
		keys    map[string]bool
		n       int // members (arrays: elements) so far
	}
	tooMany := func(field string) error {
		return problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
			problem.FieldError{Field: field, Reason: "more than " + strconv.Itoa(maxBodyMembers) + " members"})
	}
	var stack []*frame
	values := 0 // in the whole document
	path := func() string {
		var p []string
		for _, f := range stack {
			if f.object && f.key != "" {
				p = append(p, f.key)
			}
		}
		if len(p) == 0 {
			return "body"
		}
		return strings.Join(p, ".")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF: the whole document was read
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
			if !top.object || top.wantKey {
				// A value in an array, or a member's name: one more member.
				if d, ok := tok.(json.Delim); !ok || d == '{' || d == '[' {
					if top.n++; top.n > maxBodyMembers {
						return tooMany(path())
					}
					if values++; values > maxBodyValues {
						return problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
							problem.FieldError{Field: path(), Reason: "the document holds more than " + strconv.Itoa(maxBodyValues) + " values in all"})
					}
				}
			}
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) == maxBodyDepth {
					return problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
						problem.FieldError{Field: path(), Reason: "nested more than " + strconv.Itoa(maxBodyDepth) + " levels deep"})
				}
				f := &frame{}
				if t == '{' {
					f = &frame{object: true, wantKey: true, keys: map[string]bool{}}
				}
				stack = append(stack, f)
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].wantKey = true
				}
			}
		case string:
			if top != nil && top.object && top.wantKey {
				if len(t) > maxMemberName {
					top.key = "" // name the object, not its previous member
					return problem.New(http.StatusUnprocessableEntity, "the request body is invalid",
						problem.FieldError{Field: path(), Reason: "a member name longer than " + strconv.Itoa(maxMemberName) + " bytes"})
				}
				top.key, top.wantKey = t, false
				if top.keys[t] {
					// Parsers disagree on which of two same-named members
					// wins (Go keeps the last): refuse instead of guessing.
					return problem.New(http.StatusBadRequest, "the request body names a member twice",
						problem.FieldError{Field: path(), Reason: "duplicate member name"})
				}
				top.keys[t] = true
				continue
			}
			if top != nil && top.object {
				top.wantKey = true
			}
		default:
			if top != nil && top.object {
				top.wantKey = true
			}
		}
	}
}

// loneSurrogate reports whether the valid JSON document body holds a \u
// escape of a UTF-16 surrogate that is not half of a pair. The field is
// "body": the position of an escape is not worth a second pass.
func loneSurrogate(body []byte) (string, bool) {
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		// In valid JSON a backslash is always inside a string and starts
		// an escape of two bytes (\n, \\, …) or six (\uXXXX).
		if body[i+1] != 'u' {
			i++
			continue
		}
		r := hex4(body[i+2 : i+6])
		i += 5
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xDC00 || i+6 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' {
			return "body", true // a low half first, or a high half alone
		}
		if lo := hex4(body[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
			return "body", true
		}
		i += 6
	}
	return "", false
}

// hex4 decodes four hex digits (valid JSON guarantees them).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
