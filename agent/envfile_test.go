package agent

import (
	"bytes"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/testutil"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name, in string
		want     []EnvVar
		wantErr  string
	}{
		{"plain", "A=b\n", []EnvVar{{"A", "b"}}, ""},
		{"comments and blanks", "# c\n\n  A = b  \nexport B=c\n", []EnvVar{{"A", "b"}, {"B", "c"}}, ""},
		{"single quotes", `A='x y $z'`, []EnvVar{{"A", "x y $z"}}, ""},
		{"escaped quote", `A='it'\''s'`, []EnvVar{{"A", "it's"}}, ""},
		{"double quotes", `A="a \"b\" \\ \$c \n"`, []EnvVar{{"A", `a "b" \ $c \n`}}, ""},
		{"empty", "A=", []EnvVar{{"A", ""}}, ""},
		{"equals in value", "A=b=c", []EnvVar{{"A", "b=c"}}, ""},
		{"no equals", "A", nil, "want NAME=value"},
		{"bad name", "1A=b", nil, "want NAME=value"},
		{"unterminated", "A='b", nil, "unterminated single quote"},
		{"unterminated double", `A="b`, nil, "unterminated double quote"},
		{"blank in value", "A=b c", nil, "unquoted blank"},
		{"trailing backslash", `A=b\`, nil, "trailing backslash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnv(strings.NewReader(tt.in))
			if testutil.WantErr(t, "ParseEnv", err, tt.wantErr) {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestFormatEnvRejectsBadName(t *testing.T) {
	if err := FormatEnv(&bytes.Buffer{}, []EnvVar{{"A-B", "x"}}); err == nil {
		t.Fatal("FormatEnv accepted a name a shell cannot assign")
	}
}

// FuzzEnvRoundTrip checks that ParseEnv reads back what FormatEnv writes,
// and that ParseEnv never panics on arbitrary input.
func FuzzEnvRoundTrip(f *testing.F) {
	f.Add("CREDSIGN_MQTT_PASSWORD", "SharedAccessSignature sr=a%2Fb&sig=x%3D&se=1", "A='b'")
	f.Add("X", "it's \"quoted\" $HOME `cmd` \\", "export Y=\"a\\\"b\"")
	f.Fuzz(func(t *testing.T, name, value, raw string) {
		_, _ = ParseEnv(strings.NewReader(raw))
		if !validName(name) || strings.ContainsAny(value, "\n\r") {
			return
		}
		var b bytes.Buffer
		if err := FormatEnv(&b, []EnvVar{{name, value}}); err != nil {
			t.Fatal(err)
		}
		got, err := ParseEnv(&b)
		if err != nil {
			t.Fatalf("ParseEnv(FormatEnv(%q)) = %v (text %q)", value, err, b.String())
		}
		// ParseEnv trims the line, so blanks at either end of a quoted value survive
		// only inside the quotes, which FormatEnv always writes.
		if len(got) != 1 || got[0].Name != name || got[0].Value != value {
			t.Fatalf("round trip of %q gave %q", value, got)
		}
	})
}
