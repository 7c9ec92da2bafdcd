package secrets

import (
	"regexp"
	"strings"
	"testing"
)

// validIDSyntax is the syntax ValidID documents, the oracle of FuzzValidID.
var validIDSyntax = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"lamp-7", true},
		{"a", true},
		{"0", true},
		{"dev_01.a:b-c", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{".", false},
		{"..", false},
		{"-a", false},
		{"_a", false},
		{":a", false},
		{"a/b", false},
		{"a b", false},
		{"a\n", false},
		{"é", false},
		{"a%2f", false},
	}
	for _, tc := range tests {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestValidHash(t *testing.T) {
	tests := []struct {
		h    string
		want bool
	}{
		{strings.Repeat("0", 64), true},
		{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", true},
		{"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", false},
		{strings.Repeat("0", 63), false},
		{strings.Repeat("0", 65), false},
		{strings.Repeat("g", 64), false},
		{"", false},
	}
	for _, tc := range tests {
		if got := ValidHash(tc.h); got != tc.want {
			t.Errorf("ValidHash(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func FuzzValidID(f *testing.F) {
	f.Add("lamp-7")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, id string) {
		if ValidID(id) != validIDSyntax.MatchString(id) {
			t.Fatalf("ValidID(%q) = %v, the syntax it documents says %v", id, ValidID(id), !ValidID(id))
		}
		if !ValidID(id) {
			return
		}
		if len(id) > 128 || strings.ContainsAny(id, "/ \\?#%") || id == "." || id == ".." {
			t.Fatalf("ValidID accepted %q", id)
		}
	})
}
