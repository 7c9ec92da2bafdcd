package api

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
)

func TestParseIfMatch(t *testing.T) {
	t3 := deviceTag{3, 1795463909040279679}
	t5 := deviceTag{5, 7}
	cases := []struct {
		in      string
		ok, any bool
		tags    []deviceTag
	}{
		{`*`, true, true, nil},
		{` * `, true, true, nil},
		{`"3.1795463909040279679"`, true, false, []deviceTag{t3}},
		{`"3.1795463909040279679", "5.7"`, true, false, []deviceTag{t3, t5}},
		{`"3.1795463909040279679",W/"5.7","x"`, true, false, []deviceTag{t3}},
		{`"5.-7"`, true, false, []deviceTag{{5, -7}}}, // created before 1970 is a time too
		{`W/"3.1"`, true, false, nil},
		{`"3"`, true, false, nil}, // a bare version names no incarnation
		{`"03.1"`, true, false, nil},
		{`"3.01"`, true, false, nil},
		{`"0.1"`, true, false, nil},
		{`"-1.1"`, true, false, nil},
		{`"3.1.1"`, true, false, nil},
		{`"99999999999999999999.1"`, true, false, nil},
		{``, true, false, nil},
		{`3.1`, false, false, nil},
		{`"3.1`, false, false, nil},
		{`"3.1" "4.1"`, false, false, nil},
		{`"3.1795463909040279679",`, true, false, []deviceTag{t3}},
		{`*, "3.1"`, false, false, nil},
	}
	for _, c := range cases {
		m, ok := parseIfMatch(c.in)
		if ok != c.ok || m.any != c.any || !slices.Equal(m.tags, c.tags) {
			t.Errorf("parseIfMatch(%q) = %+v, %v; want any=%v tags=%v ok=%v", c.in, m, ok, c.any, c.tags, c.ok)
		}
	}
	if !(ifMatch{any: true}).matches(t3) || (ifMatch{tags: []deviceTag{t5}}).matches(t3) ||
		!(ifMatch{tags: []deviceTag{t5, t3}}).matches(t3) || (ifMatch{tags: []deviceTag{{3, 1}}}).matches(t3) {
		t.Error("matches")
	}
	d := secrets.Device{Version: 3, CreatedAt: time.Unix(0, 1795463909040279679).In(time.FixedZone("x", 3600))}
	if got := etag(d); got != `"3.1795463909040279679"` {
		t.Errorf("etag = %s", got)
	}
}

// FuzzParseIfMatch checks that the parser never panics, that what it
// accepts round-trips through String, and that versions are positive.
func FuzzParseIfMatch(f *testing.F) {
	for _, s := range []string{`*`, `"1.2"`, `"1.2", W/"2.3", "x"`, `W/`, `"`, `,,`, `"1.2",,"2.3"`, "\"1.2\"\t,\t\"2.3\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := parseIfMatch(s)
		if !ok {
			return
		}
		for _, tag := range m.tags {
			if tag.version <= 0 {
				t.Fatalf("%q: version %d", s, tag.version)
			}
			if !strings.Contains(s, `"`+tag.String()+`"`) {
				t.Fatalf("%q: tag %v not in the header", s, tag)
			}
		}
		if m.any && len(m.tags) > 0 {
			t.Fatalf("%q: both * and tags", s)
		}
	})
}
