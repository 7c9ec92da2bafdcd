package agent

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// EnvVar is one NAME=value pair.
type EnvVar struct {
	Name  string
	Value string
}

// FormatEnv writes vars as lines a POSIX shell can source and ParseEnv can
// read back, each value in single quotes and a quote inside it closed,
// escaped and reopened:
//
//	NAME='it'\''s'
func FormatEnv(w io.Writer, vars []EnvVar) error {
	for _, v := range vars {
		if !validName(v.Name) {
			return fmt.Errorf("format env: invalid variable name %q", v.Name)
		}
		if _, err := fmt.Fprintf(w, "%s='%s'\n", v.Name, strings.ReplaceAll(v.Value, "'", `'\''`)); err != nil {
			return fmt.Errorf("format env: %w", err)
		}
	}
	return nil
}

// ParseEnv reads an environment file: one NAME=value per line, blank lines
// and lines starting with # ignored, an optional "export " prefix. A value
// may mix unquoted text (a backslash escapes the next character),
// '…' (literal) and "…" (backslash escapes \ " $ `). Unquoted surrounding
// blanks are dropped; a value cannot span lines.
func ParseEnv(r io.Reader) ([]EnvVar, error) {
	var out []EnvVar
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		name, raw, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || !validName(name) {
			return nil, fmt.Errorf("env line %d: want NAME=value", n)
		}
		val, err := unquote(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("env line %d (%s): %w", n, name, err)
		}
		out = append(out, EnvVar{name, val})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read env: %w", err)
	}
	return out, nil
}

func validName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func unquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated single quote")
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", fmt.Errorf("unterminated double quote")
			}
		case '\\':
			if i+1 >= len(s) {
				return "", fmt.Errorf("trailing backslash")
			}
			i++
			b.WriteByte(s[i])
		case ' ', '\t':
			return "", fmt.Errorf("unquoted blank in value")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
