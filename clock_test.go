package credsign

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOneClock holds the service to one clock (service.Config.Now): no
// non-test file under service/ (service/tpmattest included) or
// internal/dpop reads the wall clock (time.Now(), time.Since, time.Until)
// itself, and time.Now is named, as a default, only where a clock is
// defaulted: service.New for the service, and the constructors of the two
// packages the service hands its clock to (which also run alone).
func TestOneClock(t *testing.T) {
	defaults := map[string]int{
		"service/service.go":             1, // service.New: Config.Now's default
		"service/auth.go":                1, // NewAuthenticator, an Authenticator without a service
		"service/tpmattest/tpmattest.go": 1, // tpmattest.New: Config.Now's default
		"internal/dpop/verifier.go":      1, // dpop.NewVerifier: Config.Now's default
	}
	for _, root := range []string{"service", "internal/dpop"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			name := timeImport(f)
			if name == "" {
				return nil
			}
			named := 0
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if fn := timeFunc(n.Fun, name); fn == "Now" || fn == "Since" || fn == "Until" {
						t.Errorf("%s: time.%s() reads the wall clock; use the service's clock (service.Config.Now)", fset.Position(n.Pos()), fn)
						return false // the time.Now inside is this error
					}
				case *ast.SelectorExpr:
					if timeFunc(n, name) == "Now" {
						named++
					}
				}
				return true
			})
			if want := defaults[filepath.ToSlash(path)]; named > want {
				t.Errorf("%s names time.Now %d times, want %d (only to default a clock)", path, named, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// timeImport is the name package time goes by in f, "" when f does not
// import it.
func timeImport(f *ast.File) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "time" {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return "time"
		}
	}
	return ""
}

// timeFunc is the name of e when e is pkg.Name for package time named
// pkg, else "".
func timeFunc(e ast.Expr, pkg string) string {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	if id, ok := sel.X.(*ast.Ident); ok && id.Name == pkg {
		return sel.Sel.Name
	}
	return ""
}
