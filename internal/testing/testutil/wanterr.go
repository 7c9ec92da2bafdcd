package testutil

import (
	"strings"
	"testing"
)

// WantErr checks the error of a call (named what in the failure) against
// want: an error that contains want, or none when want is "". It fails t
// when they disagree and reports whether an error was wanted, so that a
// table test's case can end there.
func WantErr(t testing.TB, what string, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: error %v, want one containing %q", what, err, want)
	}
	return true
}
