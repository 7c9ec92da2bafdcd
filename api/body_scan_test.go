package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/credsign/credsign/api/problem"
)

// checkJSON is what scanJSON refuses in a body that is valid JSON: a lone
// surrogate, or the first value over a limit.
func checkJSON(body []byte) error {
	sc := scanJSON(body)
	return sc.problem()
}

// FuzzScanJSON holds the one pass to what it replaces: encoding/json's
// grammar (json.Valid), utf8.Valid on the strings, and the document
// kin-openapi's decoder (encoding/json with UseNumber) reads.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"a":{"b":[]}}]`, `{"x":"x\u00e9\ud83d\ude00\n"}`, ` -0.5e+3 `,
		`{"a":[1,2,{"b":null,"c":true,"d":false}]}`, `"\ud800"`, "\"\xff\"", `{"a" 1}`, `[1,]`, `01`, `{"k":"\/\b\f\r\t\"\\"}`, strings.Repeat(`[`, 9) + strings.Repeat(`]`, 9),
		`{"a":1,"b":{"c":2,"c":3}}`, `{"a":{"` + strings.Repeat("x", 129) + `":1}}`, `[` + strings.Repeat(`1,`, 300) + `1]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		sc := scanJSON(b)
		if sc.syntax == json.Valid(b) {
			t.Fatalf("scanJSON(%q) syntax %v, json.Valid %v", s, sc.syntax, json.Valid(b))
		}
		if sc.syntax {
			return
		}
		if sc.badUTF8 == utf8.Valid(b) {
			t.Fatalf("scanJSON(%q) badUTF8 %v, utf8.Valid %v", s, sc.badUTF8, utf8.Valid(b))
		}
		if sc.badUTF8 {
			return
		}
		// The refusal of a valid document is the one of the token-stream
		// check scanJSON replaced.
		refused, oracle := problemOf(sc.problem()), problemOf(oldCheckJSON(b))
		if !reflect.DeepEqual(refused, oracle) {
			t.Fatalf("scanJSON(%q) refuses %+v, the token-stream check %+v", s, refused, oracle)
		}
		if refused != nil {
			return
		}
		var want any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sc.value, want) {
			t.Fatalf("scanJSON(%q) read %#v, encoding/json %#v", s, sc.value, want)
		}
	})
}

func problemOf(err error) *problem.Error {
	if err == nil {
		return nil
	}
	pe, _ := problem.Classify(err)
	return pe
}

// oldCheckJSON is the check scanJSON replaced (json.Decoder's tokens), kept
// as FuzzScanJSON's oracle for the refusals and the fields they name.
func oldCheckJSON(body []byte) error {
	if field, ok := oldLoneSurrogate(body); ok {
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

func oldLoneSurrogate(body []byte) (string, bool) {
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
		r := oldHex4(body[i+2 : i+6])
		i += 5
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xDC00 || i+6 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' {
			return "body", true // a low half first, or a high half alone
		}
		if lo := oldHex4(body[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
			return "body", true
		}
		i += 6
	}
	return "", false
}

func oldHex4(b []byte) rune {
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
