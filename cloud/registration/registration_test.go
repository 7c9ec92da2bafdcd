package registration

import (
	"strings"
	"testing"
	"time"
)

// safe is Safe, as this test was written.
var safe = Safe

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-5", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999", ""} {
		f.Add(s)
	}
	now := time.Date(2015, 10, 21, 7, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, h string) {
		d, ok := ParseRetryAfter(h, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", h, d, ok)
		}
	})
}

func FuzzSafe(f *testing.F) {
	f.Add("401002")
	f.Add("SharedAccessSignature sr=a%2Fb&sig=abc%3D")
	f.Add("0123456789abcdef0123456789abcdef")
	f.Fuzz(func(t *testing.T, s string) {
		out := safe(s)
		if out == "(withheld)" || out == "" {
			return
		}
		if out != s || strings.ContainsAny(out, "=%+/ ") || hexRunRE.MatchString(out) || len(out) > 48 {
			t.Fatalf("safe(%q) = %q", s, out)
		}
	})
}
