package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
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
		`{"a":[1,2,{"b":null,"c":true,"d":false}]}`, `"\ud800"`, "\"\xff\"", `{"a" 1}`, `[1,]`, `01`, `{"k":"\/\b\f\r\t\"\\"}`} {
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
		if sc.badUTF8 || sc.surrogate || sc.limit != nil {
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
