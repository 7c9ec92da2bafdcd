package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		r := runWith(context.Background(), nil, env(nil), arg)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "credsign-agent ") || strings.Count(r.stdout, "\n") != 1 || r.stderr != "" {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", arg, r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, " go1.") {
			t.Fatalf("%s: %q names no Go version", arg, r.stdout)
		}
	}
}

// Each command's -h starts with its synopsis and lists its own flags only.
func TestCommandHelp(t *testing.T) {
	tests := []struct {
		cmd      string
		synopsis string
		has      []string
		hasNot   []string
	}{
		{"run", "usage: credsign-agent run [flags] [--sub TOPIC]... [--sub-commands] [--pub-topic TOPIC | --pub-telemetry] [--pub-socket PATH]\n",
			[]string{"-sub ", "-sub-commands\n", "-pub-telemetry\n", "-pub-socket ", "-broker-ca-file ", "-keepalive ", "-server "},
			[]string{"-timeout", "-format", "  -t ", "  -telemetry", "  -commands"}},
		{"pub", "usage: credsign-agent pub [flags] (-t TOPIC | --telemetry) [-m MESSAGE]\n",
			[]string{"TOPIC (-t)", "  -t TOPIC\n    \tTOPIC to publish to\n", "  -telemetry\n", "-timeout duration", "-broker-ca-file "},
			[]string{"-sub ", "-format", "-C ", "-commands", "-pub-telemetry"}},
		{"sub", "usage: credsign-agent sub [flags] (-t TOPIC... | --commands) [-C COUNT] [-v]\n",
			[]string{"  -t FILTER\n", "(repeatable)", "  -commands\n", "-C int", "-timeout duration"},
			[]string{"-pub-topic", "-format", "  -m ", "-telemetry"}},
		{"creds", "usage: credsign-agent creds [flags] [--format json|env]\n",
			[]string{"-format string", "-timeout duration", "-ttl "}, []string{"-broker-ca-file", "-keepalive", "-qos", "  -t "}},
		{"exec", "usage: credsign-agent exec [flags] -- CMD [ARG]...\n",
			[]string{"-token-file ", "-log-level "}, []string{"-timeout", "-broker-ca-file", "-keepalive", "-format"}},
	}
	for _, tt := range tests {
		for _, h := range []string{"-h", "--help"} {
			r := runWith(context.Background(), nil, env(nil), tt.cmd, h)
			if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, tt.synopsis) {
				t.Fatalf("%s %s: exit %d, stderr %q, stdout %q", tt.cmd, h, r.code, r.stderr, r.stdout)
			}
			for _, s := range tt.has {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("%s -h lacks %q:\n%s", tt.cmd, s, r.stdout)
				}
			}
			for _, s := range tt.hasNot {
				if strings.Contains(r.stdout, s) {
					t.Errorf("%s -h lists %q, which is not its flag:\n%s", tt.cmd, s, r.stdout)
				}
			}
		}
	}
	r := runWith(context.Background(), nil, env(nil), "-h")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: credsign-agent COMMAND [flags]\n") {
		t.Fatalf("-h: exit %d, stdout %q", r.code, r.stdout)
	}
}

// Every usage error is one line on stderr and exit status 2.
func TestUsageErrors(t *testing.T) {
	full := map[string]string{"CREDSIGN_SERVER": "http://127.0.0.1:1", "CREDSIGN_DEVICE": "lamp", "CREDSIGN_TOKEN_FILE": "/nonexistent"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no command", full, nil, "no command"},
		{"unknown command", full, []string{"frob"}, `unknown command "frob"`},
		{"unknown flag", full, []string{"pub", "-x"}, "flag provided but not defined: -x"},
		{"flag of another command", full, []string{"creds", "--broker-ca-file", "ca.pem"}, "flag provided but not defined: -broker-ca-file"},
		{"pub without -t", full, []string{"pub", "-m", "x"}, "pub needs exactly one -t TOPIC or --telemetry"},
		{"pub with -t and --telemetry", full, []string{"pub", "-t", "x", "--telemetry"}, "pub needs exactly one -t TOPIC or --telemetry"},
		{"pub with two -t", full, []string{"pub", "-t", "x", "-t", "y"}, "pub needs exactly one -t TOPIC or --telemetry"},
		{"sub without -t", full, []string{"sub"}, "sub needs -t TOPIC or --commands"},
		{"run with two publish topics", full, []string{"run", "--pub-topic", "x", "--pub-telemetry"}, "--pub-topic and --pub-telemetry: give one"},
		{"exec without a command", full, []string{"exec"}, "exec needs a command"},
		{"bad format", full, []string{"creds", "--format", "yaml"}, `--format "yaml": want json or env`},
		{"bad qos", full, []string{"sub", "-t", "x", "-q", "3"}, "want 0, 1 or 2"},
		{"bad timeout", full, []string{"creds", "--timeout", "soon"}, `invalid value "soon" for flag -timeout`},
		{"negative timeout", full, []string{"creds", "--timeout", "-1s"}, "want 0 or more"},
		{"bad ttl", full, []string{"creds", "--ttl", "long"}, `--ttl "long": want a duration`},
		{"bad log level", full, []string{"creds", "--log-level", "loud"}, `--log-level "loud"`},
		{"bad keepalive", full, []string{"pub", "-t", "x", "--keepalive", "5s"}, "the clouds accept 30s to 1200s"},
		{"no server", nil, []string{"creds"}, "no credsign server (--server or CREDSIGN_SERVER)"},
		{"plain http elsewhere", map[string]string{"CREDSIGN_SERVER": "http://credsign.example", "CREDSIGN_DEVICE": "d", "CREDSIGN_TOKEN_FILE": "t"}, []string{"creds"}, "plain http is for loopback only"},
		{"missing config", full, []string{"creds", "--config", "/nonexistent/agent.env"}, "no such file"},
		{"socket without topic", full, []string{"run", "--pub-socket", "/tmp/x.sock"}, "--pub-socket needs --pub-topic or --pub-telemetry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runWith(context.Background(), nil, env(tt.env), tt.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, stderr %q; want 2", r.code, r.stderr)
			}
			oneLine(t, r.stderr, tt.want)
		})
	}
}

// A failure to start is one plain line, status 1.
func TestStartupFailureIsOneLine(t *testing.T) {
	f := newFixture(t)
	sock := filepath.Join(t.TempDir(), "no-such-dir", "pub.sock")
	r := f.run(testCtx(t), nil, "run", "--broker-ca-file", f.caFile, "--pub-topic", "x", "--pub-socket", sock)
	if r.code != 1 {
		t.Fatalf("exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	oneLine(t, r.stderr, "credsign-agent run: --pub-socket: listen unix "+sock)
	r = f.run(testCtx(t), nil, "pub", "--broker-ca-file", "/nonexistent/ca.pem", "-t", "x", "-m", "x")
	if r.code != 1 {
		t.Fatalf("exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	oneLine(t, r.stderr, "credsign-agent pub: --broker-ca-file: read CA bundle: open /nonexistent/ca.pem")
}
