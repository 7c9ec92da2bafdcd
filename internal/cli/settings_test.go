package cli

import (
	"bytes"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// TestSettings: which of the flags and variables wins, the deprecated
// spellings with their warning, and the refusals.
func TestSettings(t *testing.T) {
	file := func(name, body string) string { return testutil.WriteFile(t, name, []byte(body)) }
	flagTok := file("flag.token", "csp_from-flag\nsecond line ignored\n")
	envTok := file("env.token", "  csp_from-env-file  \n")
	empty := file("empty.token", "\n")

	for _, tt := range []struct {
		name       string
		args       []string
		env        map[string]string
		server     string
		token      string
		err        string // of Server or Token
		warning    string
		noOldToken bool
	}{
		{name: "defaults", env: map[string]string{TokenEnv: "t"}, server: DefaultServer, token: "t"},
		{name: "flags win", args: []string{"--server", "https://a.example/", "--token-file", flagTok},
			env: map[string]string{ServerEnv: "https://b.example", TokenEnv: "t", TokenFileEnv: envTok}, server: "https://a.example", token: "csp_from-flag"},
		{name: "env", env: map[string]string{ServerEnv: "https://b.example", TokenFileEnv: envTok}, server: "https://b.example", token: "csp_from-env-file"},
		{name: "token text beats token file variable", env: map[string]string{TokenEnv: "csp_text", TokenFileEnv: envTok}, server: DefaultServer, token: "csp_text"},
		{name: "old flag", args: []string{"--url", "http://127.0.0.1:9"}, env: map[string]string{TokenEnv: "t"}, server: "http://127.0.0.1:9", token: "t", warning: "--url is deprecated"},
		{name: "old env", env: map[string]string{oldServerEnv: "http://[::1]:9", TokenEnv: "t"}, server: "http://[::1]:9", token: "t", warning: "$CREDSIGN_URL is deprecated"},
		{name: "new env beats old flag", args: []string{"--server", "http://localhost:7", "--url", "http://127.0.0.1:9"}, env: map[string]string{TokenEnv: "t"}, server: "http://localhost:7", token: "t"},
		{name: "old token flag", args: []string{"--token", "csp_old"}, server: DefaultServer, token: "csp_old", warning: "--token is deprecated"},
		{name: "no old token flag", args: []string{"--token", "x"}, noOldToken: true, err: "flag provided but not defined"},
		{name: "no token", server: DefaultServer, err: "no token"},
		{name: "empty token file", args: []string{"--token-file", empty}, server: DefaultServer, err: "is empty"},
		{name: "missing token file", env: map[string]string{TokenFileEnv: filepath.Join(t.TempDir(), "nope")}, server: DefaultServer, err: "reading $CREDSIGN_TOKEN_FILE"},
		{name: "plain http away", args: []string{"--server", "http://10.0.0.1:8080"}, err: "not loopback"},
		{name: "look-alike", args: []string{"--server", "http://127.0.0.1.example.com"}, err: "not loopback"},
		{name: "not a url", args: []string{"--server", "ftp://x"}, err: "not an http(s) URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s Settings
			var warn bytes.Buffer
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			s.Register(fs, "credsign x", func(k string) string { return tt.env[k] }, &warn, !tt.noOldToken)
			err := fs.Parse(tt.args)
			var server, token string
			if err == nil {
				server, err = s.Server()
			}
			if err == nil {
				token, err = s.Token()
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || server != tt.server || token != tt.token {
				t.Fatalf("server %q token %q err %v, want %q %q", server, token, err, tt.server, tt.token)
			}
			if w := warn.String(); (tt.warning == "") != (w == "") || !strings.Contains(w, tt.warning) || strings.Count(w, "\n") > 1 {
				t.Errorf("warning %q, want %q", w, tt.warning)
			}
			if given := s.Given(fs); given != (len(tt.args) > 0) {
				t.Errorf("Given %v with args %v", given, tt.args)
			}
		})
	}
}
