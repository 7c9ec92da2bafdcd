package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDuplicateMember(t *testing.T) {
	cases := []struct {
		body  string
		field string
		dup   bool
	}{
		{`{}`, "", false},
		{`{"a":1,"b":2}`, "", false},
		{`{"a":"a","b":"a"}`, "", false},                     // a value equal to a key
		{`[{"a":1},{"a":2}]`, "", false},                     // same name, different objects
		{`{"a":{"a":{"a":1}}}`, "", false},                   // same name, nested objects
		{`{"a":[1,{"b":1}],"b":[{"b":2,"c":3}]}`, "", false}, // arrays of objects
		{`{"a":1,"a":2}`, "a", true},
		{`{"p":{"x":1,"y":[],"x":2}}`, "p.x", true},
		{`{"p":{"x":{}},"q":[{"r":1,"r":1}]}`, "q.r", true},
		{`{"p":{"x":1},"p":{"x":1}}`, "p", true},
		{`"x"`, "", false},
		{`[1,"a",{"k":null,"l":true}]`, "", false},
	}
	for _, c := range cases {
		if !json.Valid([]byte(c.body)) {
			t.Fatalf("%s is not valid JSON", c.body)
		}
		field, dup := duplicateMember([]byte(c.body))
		if dup != c.dup || field != c.field {
			t.Errorf("duplicateMember(%s) = %q, %v; want %q, %v", c.body, field, dup, c.field, c.dup)
		}
	}
}

func FuzzDuplicateMember(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"a":{"b":[]}}]`, `{"x":"x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(s)) {
			return
		}
		_, dup := duplicateMember([]byte(s)) // must not panic
		// Whatever the input, a value re-encoded from its decoding has no
		// duplicate members and must never be flagged.
		var v any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return
		}
		if _, d := duplicateMember(b); d {
			t.Errorf("re-encoded %s flagged as duplicate (original dup=%v)", b, dup)
		}
	})
}
