package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/api/problem"
)

func TestCheckJSONDuplicateMember(t *testing.T) {
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
		field, dup := "", false
		if err := checkJSON([]byte(c.body)); err != nil {
			pe, _ := problem.Classify(err)
			field, dup = pe.Fields[0].Field, pe.Fields[0].Reason == "duplicate member name"
		}
		if dup != c.dup || field != c.field {
			t.Errorf("checkJSON(%s) names %q, dup %v; want %q, %v", c.body, field, dup, c.field, c.dup)
		}
	}
}

func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"a":{"b":[]}}]`, `{"x":"x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(s)) {
			return
		}
		orig := checkJSON([]byte(s)) // must not panic
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
		if e := checkJSON(b); e != nil {
			if pe, _ := problem.Classify(e); pe.Fields[0].Reason == "duplicate member name" {
				t.Errorf("re-encoded %s flagged as duplicate (original: %v)", b, orig)
			}
		}
	})
}

func TestCheckJSONDepthAndSurrogates(t *testing.T) {
	cases := []struct {
		body   string
		status int // 0: accepted
	}{
		{`{"a":{"b":{"c":[1,2,{"d":"x"}]}}}`, 0},
		{strings.Repeat("[", maxBodyDepth) + strings.Repeat("]", maxBodyDepth), 0},
		{strings.Repeat("[", maxBodyDepth+1) + strings.Repeat("]", maxBodyDepth+1), http.StatusUnprocessableEntity},
		{`{"params":{"deviceId":` + strings.Repeat(`{"a":`, 9) + "1" + strings.Repeat("}", 9) + `}}`, http.StatusUnprocessableEntity},
		{`{"secret":"\ud83d\ude00"}`, 0},                     // a pair: U+1F600
		{`{"secret":"\\ud800"}`, 0},                          // an escaped backslash, then text
		{`{"secret":"\u00e9\u0041"}`, 0},                     // ordinary escapes
		{`{"secret":"\ud800"}`, http.StatusBadRequest},       // high half alone
		{`{"secret":"\udc00\ud800"}`, http.StatusBadRequest}, // halves reversed
		{`{"secret":"\uD800x"}`, http.StatusBadRequest},      // upper-case hex, alone
		{`{"secret":"\ud800\u0041"}`, http.StatusBadRequest}, // high half, then not a low half
		{`{"k":"a\ud800"}`, http.StatusBadRequest},
		{`["\ud800\udfff"]`, 0},
	}
	for _, c := range cases {
		if !json.Valid([]byte(c.body)) {
			t.Fatalf("%s is not valid JSON", c.body)
		}
		got := 0
		if err := checkJSON([]byte(c.body)); err != nil {
			pe, _ := problem.Classify(err)
			got = pe.Status
		}
		if got != c.status {
			t.Errorf("checkJSON(%.60s) status %d, want %d", c.body, got, c.status)
		}
	}
}

// TestCheckJSONCostIsLinear: refusing a hostile body costs one pass, not a
// validator's quadratic walk (a 20 KB nested param once took 13 s and 3.5 GB).
func TestCheckJSONCostIsLinear(t *testing.T) {
	for _, body := range []string{
		`{"p":` + strings.Repeat(`{"a":`, 30000) + "1" + strings.Repeat("}", 30000) + `}`,
		`{"p":` + strings.Repeat(`[`, 9000) + strings.Repeat(`]`, 9000) + `}`,
	} {
		// The baseline is encoding/json's linear validity check of the same
		// bytes, timed in the same run (the best of three each), so that a
		// loaded machine slows both; a quadratic walk takes seconds.
		best := func(f func()) time.Duration {
			m := time.Duration(1 << 62)
			for range 3 {
				start := time.Now()
				f()
				m = min(m, time.Since(start))
			}
			return m
		}
		var err error
		d := best(func() { err = checkJSON([]byte(body)) })
		base := best(func() { json.Valid([]byte(body)) })
		if err == nil || d > max(100*base, 250*time.Millisecond) {
			t.Errorf("%d-byte nested body: err %v after %v (json.Valid: %v), want a refusal in linear time", len(body), err, d, base)
		}
	}
}
