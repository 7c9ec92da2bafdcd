package cli

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
)

// The settings every client of the API spells the same way: the operator's
// commands (credsign devices, groups, tokens, enrolment-tokens, keys,
// import, doctor --id, backup) and the device's agent.
const (
	ServerFlag    = "server"              // the server's base URL
	ServerEnv     = "CREDSIGN_SERVER"     // else this variable
	TokenFileFlag = "token-file"          // a file holding the bearer token
	TokenFileEnv  = "CREDSIGN_TOKEN_FILE" // else this variable
	// TokenEnv holds the token itself, for a script that has it in a
	// variable; it wins over CREDSIGN_TOKEN_FILE (not over --token-file).
	TokenEnv = "CREDSIGN_TOKEN"
	// DefaultServer is where `credsign serve` listens by default.
	DefaultServer = "http://127.0.0.1:8080"
)

// The spellings of the same settings before they were unified, accepted
// for one release with a warning.
const (
	oldServerFlag = "url"          // credsign import, doctor, backup
	oldServerEnv  = "CREDSIGN_URL" // the same
	oldTokenFlag  = "token"        // credsign doctor: the token's text on the command line
)

// Settings are where an operator's command finds the server and the token
// it presents. Register them on a command's flag set, parse, then call
// Server and Token.
type Settings struct {
	prog      string
	getenv    func(string) string
	warn      io.Writer
	server    string
	tokenFile string
	oldURL    string
	oldToken  string
}

// Register adds --server and --token-file to fs, and the deprecated --url
// (and --token when oldToken is true: credsign doctor had it). prog names
// the command in warnings written to warn; getenv reads the environment
// (os.Getenv when nil).
func (s *Settings) Register(fs *flag.FlagSet, prog string, getenv func(string) string, warn io.Writer, oldToken bool) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s.prog, s.getenv, s.warn = prog, getenv, warn
	fs.StringVar(&s.server, ServerFlag, "", "the server's base `URL` (else $"+ServerEnv+", else "+DefaultServer+"); plain http:// only to a loopback host")
	fs.StringVar(&s.tokenFile, TokenFileFlag, "", "`FILE` holding the admin or provisioner token (else $"+TokenEnv+", the token itself, else $"+TokenFileEnv+")")
	fs.StringVar(&s.oldURL, oldServerFlag, "", "deprecated spelling of --server (and $"+oldServerEnv+" of $"+ServerEnv+"); removed in the next release")
	if oldToken {
		fs.StringVar(&s.oldToken, oldTokenFlag, "", "deprecated: the token's text, visible in the process list; use --token-file or $"+TokenEnv)
	}
}

// Given reports which of the settings' flags the command line set
// (call after parsing fs).
func (s *Settings) Given(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case ServerFlag, TokenFileFlag, oldServerFlag, oldTokenFlag:
			given = true
		}
	})
	return given
}

func (s *Settings) warnf(format string, args ...any) {
	if s.warn != nil {
		fmt.Fprintf(s.warn, s.prog+": warning: "+format+"\n", args...)
	}
}

// Server returns the server's base URL: --server, $CREDSIGN_SERVER, the
// deprecated --url or $CREDSIGN_URL (with a warning), else DefaultServer.
// A URL a token should not be sent to is an error.
func (s *Settings) Server() (string, error) {
	u := s.server
	switch {
	case u != "":
	case s.oldURL != "":
		s.warnf("--url is deprecated and goes in the next release; use --server")
		u = s.oldURL
	case s.getenv(ServerEnv) != "":
		u = s.getenv(ServerEnv)
	case s.getenv(oldServerEnv) != "":
		s.warnf("$%s is deprecated and goes in the next release; use $%s", oldServerEnv, ServerEnv)
		u = s.getenv(oldServerEnv)
	default:
		u = DefaultServer
	}
	return strings.TrimRight(u, "/"), CheckServer(u)
}

// CheckServer refuses a URL a token should not be sent to: it must be
// http(s) with a host, and plain http:// only to a loopback host.
func CheckServer(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("--server %q is not an http(s) URL", raw)
	}
	if u.Scheme == "http" {
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("refusing to send a token over plain http:// to %s, which is not loopback; use https://", host)
		}
	}
	return nil
}

// Token returns the bearer token: the first line of --token-file, else
// $CREDSIGN_TOKEN, else the file $CREDSIGN_TOKEN_FILE names, else the
// deprecated --token (with a warning).
func (s *Settings) Token() (string, error) {
	file, from := s.tokenFile, "--"+TokenFileFlag
	switch {
	case file != "":
	case s.oldToken != "":
		s.warnf("--token is deprecated and goes in the next release (the process list shows it); use --token-file or $%s", TokenEnv)
		return s.oldToken, nil
	case s.getenv(TokenEnv) != "":
		return strings.TrimSpace(s.getenv(TokenEnv)), nil
	case s.getenv(TokenFileEnv) != "":
		file, from = s.getenv(TokenFileEnv), "$"+TokenFileEnv
	default:
		return "", fmt.Errorf("no token: give --%s FILE, or set $%s or $%s", TokenFileFlag, TokenEnv, TokenFileEnv)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", from, err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", fmt.Errorf("%s %s is empty", from, file)
	}
	return tok, nil
}
