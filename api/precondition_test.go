package api

import (
	"slices"
	"strings"
	"testing"
)

func TestParseIfMatch(t *testing.T) {
	cases := []struct {
		in       string
		ok, any  bool
		versions []int64
	}{
		{`*`, true, true, nil},
		{` * `, true, true, nil},
		{`"3"`, true, false, []int64{3}},
		{`"3", "5"`, true, false, []int64{3, 5}},
		{`"3",W/"5","x"`, true, false, []int64{3}},
		{`W/"3"`, true, false, nil},
		{`"03"`, true, false, nil},
		{`"0"`, true, false, nil},
		{`"-1"`, true, false, nil},
		{`"99999999999999999999"`, true, false, nil},
		{``, true, false, nil},
		{`3`, false, false, nil},
		{`"3`, false, false, nil},
		{`"3" "4"`, false, false, nil},
		{`"3",`, true, false, []int64{3}},
		{`*, "3"`, false, false, nil},
	}
	for _, c := range cases {
		m, ok := parseIfMatch(c.in)
		if ok != c.ok || m.any != c.any || !slices.Equal(m.versions, c.versions) {
			t.Errorf("parseIfMatch(%q) = %+v, %v; want any=%v versions=%v ok=%v", c.in, m, ok, c.any, c.versions, c.ok)
		}
	}
	if !(ifMatch{any: true}).matches(7) || (ifMatch{versions: []int64{1, 2}}).matches(3) || !(ifMatch{versions: []int64{1, 2}}).matches(2) {
		t.Error("matches")
	}
}

// FuzzParseIfMatch checks that the parser never panics, that what it
// accepts round-trips through etag, and that versions are positive.
func FuzzParseIfMatch(f *testing.F) {
	for _, s := range []string{`*`, `"1"`, `"1", W/"2", "x"`, `W/`, `"`, `,,`, `"1",,"2"`, "\"1\"\t,\t\"2\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := parseIfMatch(s)
		if !ok {
			return
		}
		for _, v := range m.versions {
			if v <= 0 {
				t.Fatalf("%q: version %d", s, v)
			}
			if !strings.Contains(s, etag(v)) {
				t.Fatalf("%q: version %d not in the header", s, v)
			}
		}
		if m.any && len(m.versions) > 0 {
			t.Fatalf("%q: both * and versions", s)
		}
	})
}
