package registration

import (
	"strings"
	"testing"
)

// safe is Safe, as this test was written.
var safe = Safe

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
