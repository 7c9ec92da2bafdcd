package credsign

import (
	"strings"
	"testing"
)

// TestInternalLayout holds internal/ to the split docs/architecture.md
// describes: test harnesses (internal/testing/..., and the store
// conformance suite secrets/storetest) are imported by tests and by each
// other only, and neither they nor the tools (internal/tools/...) end up in
// a shipped binary.
func TestInternalLayout(t *testing.T) {
	const mod = "github.com/credsign/credsign/"
	harness := func(pkg string) bool {
		return strings.HasPrefix(pkg, mod+"internal/testing/") || pkg == mod+"secrets/storetest"
	}
	t.Run("harnesses imported by tests only", func(t *testing.T) {
		// One line per package: its path, then its non-test imports.
		for _, line := range goList(t, "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...") {
			pkg, imports, _ := strings.Cut(line, " ")
			if harness(pkg) {
				continue
			}
			for _, imp := range strings.Fields(imports) {
				if harness(imp) {
					t.Errorf("%s imports the test harness %s outside its tests", pkg, imp)
				}
			}
		}
	})

	for _, cmd := range []string{"./cmd/credsign", "./cmd/credsign-agent", "./cmd/credsign-emulator"} {
		t.Run(cmd+" links no harness or tool", func(t *testing.T) {
			for _, dep := range goList(t, "-deps", cmd) {
				if harness(dep) || strings.HasPrefix(dep, mod+"internal/tools/") {
					t.Errorf("%s links %s", cmd, dep)
				}
			}
		})
	}
}
