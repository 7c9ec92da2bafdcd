package credsign

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs `go list args...` in the module root and returns its output's
// lines; the layout and architecture tests read the tree through it.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}
