package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// TestParseSettings: credsign-load finds the server and the token as the
// other client commands do, its old variables still work, and a token's
// kind decides which of the two it is.
func TestParseSettings(t *testing.T) {
	file := func(name, body string) string { return testutil.WriteFile(t, name, []byte(body)) }
	const admin, prov = "csa_load-test-admin-0123456789", "csp_load-test-provisioner-0123456789"
	adminFile, provFile := file("admin", admin+"\n"), file("prov", prov+"\n")
	for _, tt := range []struct {
		name              string
		args              []string
		env               map[string]string
		server            string
		adminTok, provTok string
		err, warn         string
	}{
		{name: "defaults and CREDSIGN_TOKEN", env: map[string]string{"CREDSIGN_TOKEN": admin}, server: "http://127.0.0.1:8080", adminTok: admin},
		{name: "--server and --token-file", args: []string{"--server", "http://127.0.0.1:9999/", "--token-file", provFile}, server: "http://127.0.0.1:9999", provTok: prov},
		{name: "CREDSIGN_SERVER and CREDSIGN_TOKEN_FILE", env: map[string]string{"CREDSIGN_SERVER": "https://credsign.example.com", "CREDSIGN_TOKEN_FILE": adminFile}, server: "https://credsign.example.com", adminTok: admin},
		{name: "old variables", env: map[string]string{"CREDSIGN_ADMIN_TOKEN": admin, "CREDSIGN_PROVISIONER_TOKEN": prov, "CREDSIGN_TOKEN": "csa_other-0123456789abcdef"}, server: "http://127.0.0.1:8080", adminTok: admin, provTok: prov},
		{name: "--token-file wins over the old variables", args: []string{"--token-file", provFile}, env: map[string]string{"CREDSIGN_ADMIN_TOKEN": admin}, server: "http://127.0.0.1:8080", provTok: prov},
		{name: "deprecated --url", args: []string{"--url", "http://localhost:8081"}, env: map[string]string{"CREDSIGN_TOKEN": admin}, server: "http://localhost:8081", adminTok: admin, warn: "--url is deprecated"},
		{name: "no token", err: "no token: give --token-file FILE"},
		{name: "token file missing", args: []string{"--token-file", filepath.Join(t.TempDir(), "none")}, err: "reading --token-file"},
		{name: "plain http to another host", args: []string{"--server", "http://credsign.example.com"}, env: map[string]string{"CREDSIGN_TOKEN": admin}, err: "not loopback"},
		{name: "an argument", args: []string{"extra"}, env: map[string]string{"CREDSIGN_TOKEN": admin}, err: "unexpected arguments [extra]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c, err := parse(tt.args, func(k string) string { return tt.env[k] }, &stderr)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.o.Server != tt.server || c.o.AdminToken != tt.adminTok || c.o.ProvisionerToken != tt.provTok {
				t.Errorf("server %q admin %q provisioner %q; want %q %q %q", c.o.Server, c.o.AdminToken, c.o.ProvisionerToken, tt.server, tt.adminTok, tt.provTok)
			}
			if !strings.Contains(stderr.String(), tt.warn) || (tt.warn == "" && stderr.Len() > 0) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.warn)
			}
		})
	}
}
