package credsign

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestArchitectureTable holds docs/architecture.md's package table to the
// tree: every package `go list ./...` finds has a row, and no row names a
// package that does not exist. A row's first cell names its packages in
// backquotes; `dir/<name>` followed by names in parentheses stands for
// dir/name for each of them, and the module root is `credsign`.
func TestArchitectureTable(t *testing.T) {
	const mod = "github.com/credsign/credsign"
	var listed []string
	for _, p := range goList(t, "./...") {
		if p == mod {
			listed = append(listed, "credsign")
			continue
		}
		listed = append(listed, strings.TrimPrefix(p, mod+"/"))
	}
	doc, err := os.ReadFile("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	documented, err := tablePackages(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range listed {
		if !slices.Contains(documented, p) {
			t.Errorf("package %s is not in docs/architecture.md's package table", p)
		}
	}
	for _, p := range documented {
		if !slices.Contains(listed, p) {
			t.Errorf("docs/architecture.md's package table lists %s, which go list ./... does not find", p)
		}
	}
}

var codeRE = regexp.MustCompile("`([^`]+)`")

// tablePackages returns the packages named in the first column of the
// table headed "| package |".
func tablePackages(doc string) ([]string, error) {
	_, table, ok := strings.Cut(doc, "\n| package |")
	if !ok {
		return nil, os.ErrNotExist
	}
	var pkgs []string
	for i, line := range strings.Split(table, "\n") {
		if i < 2 { // the rest of the header and the separator
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cell := strings.Split(line, "|")[1]
		names := codeRE.FindAllStringSubmatch(cell, -1)
		if len(names) == 0 {
			continue
		}
		first := names[0][1]
		dir, pattern := strings.CutSuffix(first, "/<name>")
		if !pattern {
			pkgs = append(pkgs, first)
			continue
		}
		for _, n := range names[1:] {
			pkgs = append(pkgs, dir+"/"+n[1])
		}
	}
	return pkgs, nil
}

func TestTablePackages(t *testing.T) {
	doc := "text\n\n| package | job | imports |\n| --- | --- | --- |\n" +
		"| `a` | one `not/a/package` | `b` |\n" +
		"| `c/<name>` (`x`, `y`) | each | |\n" +
		"| `credsign` (the root) | | |\n" +
		"\n| `after` | the table | |\n"
	got, err := tablePackages(doc)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "c/x", "c/y", "credsign"}; !slices.Equal(got, want) {
		t.Fatalf("tablePackages = %q, want %q", got, want)
	}
	if _, err := tablePackages("no table"); err == nil {
		t.Fatal("a document without the table parsed")
	}
}
