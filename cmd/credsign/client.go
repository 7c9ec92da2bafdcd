package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/credsign/credsign/internal/apiclient"
	clisettings "github.com/credsign/credsign/internal/cli"
)

// Exit statuses of the client commands (devices, groups, tokens,
// enrolment-tokens, keys), besides exitOK, exitError (the server failed
// or could not be reached) and exitUsage (bad command line: nothing was
// sent). Each names what the server's problem answer said, so a script
// can act on it without reading stderr.
const (
	exitInvalid   = 3 // 400, 413, 415, 422: the request was refused as it stands
	exitNotFound  = 4 // 404: no such device, group or token
	exitConflict  = 5 // 409, 412: it exists, or changed since it was read
	exitDenied    = 6 // 401, 403: the token is unknown, revoked or may not do this
	exitTryLater  = 7 // 429, 503: over the rate limit or the store is unavailable; retry
	exitUnhandled = exitError
)

// exitFor maps a refused request's status to an exit status.
func exitFor(status int) int {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return exitInvalid
	case http.StatusNotFound:
		return exitNotFound
	case http.StatusConflict, http.StatusPreconditionFailed:
		return exitConflict
	case http.StatusUnauthorized, http.StatusForbidden:
		return exitDenied
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return exitTryLater
	}
	return exitUnhandled
}

// subcommand is one verb of a client command: it parses its own flags and
// arguments with call.parse, makes one or more requests and prints the
// answer with call.done.
type subcommand struct {
	summary string
	run     func(ctx context.Context, c *clientRun) int
}

// clientGroups are the client commands and their verbs. A verb the API
// gains is one more entry here and one function.
var clientGroups = map[string]map[string]subcommand{
	"devices": {
		"list":          {"list devices, a page at a time or --all (filters: --cloud, --label k=v)", devicesList},
		"get":           {"show one device (never its secret)", devicesGet},
		"put":           {"create or replace a device from a JSON document (--file)", devicesPut},
		"patch":         {"change a device without its secret, from a JSON merge patch (--file)", devicesPatch},
		"rotate-secret": {"replace a device's cloud secret alone (--secret-file), never printing it", devicesRotateSecret},
		"keys":          {"list, add or remove the public keys bound to a device (devices keys help)", devicesKeys},
		"delete":        {"delete a device, its secret and its tokens", devicesDelete},
	},
	"groups": {
		"list":   {"list groups, a page at a time or --all", groupsList},
		"get":    {"show one group (never its secret)", groupsGet},
		"put":    {"create or replace a group from a JSON document (--file)", groupsPut},
		"patch":  {"change a group without its secret, from a JSON merge patch (--file)", groupsPatch},
		"delete": {"delete a group and its secret", groupsDelete},
	},
	"tokens": {
		"mint":   {"mint a provisioner token (admin; --scope-group, --scope-label), or a device token with --device", tokensMint},
		"list":   {"list the provisioner tokens (admin), or a device's with --device (never their text)", tokensList},
		"revoke": {"revoke a token (any, admin), or a device's token with --device", tokensRevoke},
	},
	"enrolment-tokens": {
		"mint":   {"mint an enrolment token for a group", enrolmentMint},
		"list":   {"list a group's enrolment tokens (never their text)", enrolmentList},
		"get":    {"show an enrolment token's uses, limit and expiry (never its text)", enrolmentGet},
		"revoke": {"revoke an enrolment token", enrolmentRevoke},
	},
	"keys": {
		"rotate": {"make a new JWT signing key current (admin)", keysRotate},
		"jwks":   {"show the published JWT verification keys", keysJWKS},
	},
}

// runClientGroup returns the command that runs the verbs of group.
func runClientGroup(group string) command {
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return dispatch(ctx, "credsign "+group, clientGroups[group], args, stdin, stdout, stderr)
	}
}

// dispatch runs the verb args[0] of verbs (name is the command so far,
// such as "credsign devices"), or prints the verbs for help or no verb.
func dispatch(ctx context.Context, name string, verbs map[string]subcommand, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		fmt.Fprintf(w, "usage: %s <verb> [flags] [args]\nverbs:\n", name)
		names := make([]string, 0, len(verbs))
		for n := range verbs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %-14s %s\n", n, verbs[n].summary)
		}
		fmt.Fprintf(w, "run '%s <verb> -h' for its flags; docs/cli.md lists the exit statuses\n", name)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown verb %q (run '%s help')\n", name, args[0], name)
		return exitUsage
	}
	c := &clientRun{name: name + " " + args[0], summary: v.summary, args: args[1:], stdin: stdin, stdout: stdout, stderr: stderr}
	return v.run(ctx, c)
}

// clientRun is one run of a client verb: its command line, the client and
// where it prints.
type clientRun struct {
	name, summary  string
	args           []string
	stdin          io.Reader
	stdout, stderr io.Writer

	fs       *flag.FlagSet
	settings clisettings.Settings
	json     bool
	pos      []string
	client   *apiclient.ClientWithResponses
	// inputs read the files the verb's flags name, once the command
	// line is parsed and the client made.
	inputs []func() error
}

// parse reads the flags (the settings, --json and those flags adds) and
// exactly the positional arguments named in operands, then makes the
// client. It returns false after printing a one-line message (or the
// usage for -h); code is then the exit status.
func (c *clientRun) parse(operands string, flags func(fs *flag.FlagSet)) (ok bool, code int) {
	c.fs = flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.settings.Register(c.fs, c.name, nil, c.stderr, false)
	c.fs.BoolVar(&c.json, "json", false, "print the API's JSON answer as it came, for scripts")
	if flags != nil {
		flags(c.fs)
	}
	c.fs.Usage = func() {
		fmt.Fprintf(c.fs.Output(), "usage: %s [flags] %s\n\n%s.\n\nflags:\n", c.name, operands, c.summary)
		c.fs.PrintDefaults()
	}
	c.fs.SetOutput(io.Discard)
	if err := c.fs.Parse(c.args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.fs.SetOutput(c.stdout)
			c.fs.Usage()
			return false, exitOK
		}
		return false, c.usage("%v", err)
	}
	c.pos = c.fs.Args()
	if want := len(strings.Fields(operands)); len(c.pos) != want {
		if want == 0 {
			return false, c.usage("unexpected argument %q", c.pos[0])
		}
		return false, c.usage("want %s (run '%s -h')", operands, c.name)
	}
	server, err := c.settings.Server()
	if err != nil {
		return false, c.usage("%v", err)
	}
	token, err := c.settings.Token()
	if err != nil {
		return false, c.usage("%v", err)
	}
	c.client, err = apiclient.NewClientWithResponses(server, apiclient.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("User-Agent", "credsign-cli")
		return nil
	}))
	if err != nil {
		return false, c.usage("%v", err)
	}
	for _, read := range c.inputs {
		if err := read(); err != nil {
			return false, c.usage("%v", err)
		}
	}
	return true, exitOK
}

// usage prints a one-line message for a bad command line and returns
// exitUsage.
func (c *clientRun) usage(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\n", c.name, fmt.Sprintf(format, args...))
	return exitUsage
}

// transport reports a request that got no answer.
func (c *clientRun) transport(err error) int {
	fmt.Fprintf(c.stderr, "%s: %v\n", c.name, err)
	return exitError
}

// answer is an answer of the generated client: its status and its body
// as it came.
type answer interface {
	StatusCode() int
	GetBody() []byte
}

// done finishes a request: no answer is a transport error, a refusal is
// one line on stderr and its exit status; otherwise --json prints the
// body as it came and else table prints it for people.
func (c *clientRun) done(res answer, err error, table func(w io.Writer)) int {
	if err != nil {
		return c.transport(err)
	}
	if code, refused := c.refused(res.StatusCode(), res.GetBody()); refused {
		return code
	}
	if c.json {
		c.printJSON(res.GetBody())
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	_ = tw.Flush()
	return exitOK
}

// deleted finishes a delete or revoke like done: the API answers 204 and
// no body, so --json prints nothing and a person reads what is gone.
func (c *clientRun) deleted(res answer, err error, what string) int {
	if err != nil {
		return c.transport(err)
	}
	if code, refused := c.refused(res.StatusCode(), res.GetBody()); refused {
		return code
	}
	if !c.json {
		fmt.Fprintln(c.stdout, what)
	}
	return exitOK
}

// refused reports an answer that is not a success on stderr.
func (c *clientRun) refused(status int, body []byte) (int, bool) {
	if status >= 200 && status < 300 {
		return exitOK, false
	}
	fmt.Fprintf(c.stderr, "%s: %s\n", c.name, problemLine(status, body))
	return exitFor(status), true
}

// printJSON writes an answer's body as it came, ending with a newline.
func (c *clientRun) printJSON(body []byte) {
	_, _ = c.stdout.Write(body)
	if !bytes.HasSuffix(body, []byte("\n")) {
		_, _ = io.WriteString(c.stdout, "\n")
	}
}

// problemLine is a refusal in one line: the status, the problem's title
// and detail, and the fields it names.
func problemLine(status int, body []byte) string {
	var p apiclient.Problem
	if json.Unmarshal(body, &p) != nil || p.Title == "" {
		return fmt.Sprintf("%d %s", status, http.StatusText(status))
	}
	s := fmt.Sprintf("%d %s", status, oneLine(p.Title))
	if p.Detail != nil && *p.Detail != "" {
		s += ": " + oneLine(*p.Detail)
	}
	if p.Errors != nil {
		var fields []string
		for _, e := range *p.Errors {
			fields = append(fields, oneLine(e.Field+": "+e.Reason))
		}
		if len(fields) > 0 {
			s += " (" + strings.Join(fields, "; ") + ")"
		}
	}
	return s
}

// oneLine keeps a server's text on one line of the terminal.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// inputFlag registers the flag name, a file ('-' for standard input) the
// verb reads once its command line is parsed: read turns what the file
// named holds into the verb's input, or says why not.
func (c *clientRun) inputFlag(fs *flag.FlagSet, name, usage string, read func(file string) error) {
	file := fs.String(name, "", usage)
	c.inputs = append(c.inputs, func() error { return read(*file) })
}

// readInput reads the file the flag name gave, or at most limit bytes of
// standard input for "-"; need says what the file is for when none was
// given.
func (c *clientRun) readInput(name, file, need string, limit int64) ([]byte, error) {
	if file == "" {
		return nil, fmt.Errorf("--%s FILE (or - for standard input) is required: %s", name, need)
	}
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(c.stdin, limit))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	return b, nil
}

// documentFlag registers --file, the JSON document a put or patch sends,
// read into doc.
func (c *clientRun) documentFlag(fs *flag.FlagSet, doc *[]byte, usage string) {
	c.inputFlag(fs, "file", usage, func(file string) error {
		b, err := c.readInput("file", file, "the JSON document to write", 1<<20)
		if err == nil && !json.Valid(b) {
			err = fmt.Errorf("--file %s is not one JSON document", file)
		}
		*doc = b
		return err
	})
}

// parseDocument is parse for a verb whose one flag is --file, the JSON
// document it sends: usage says what the document holds.
func (c *clientRun) parseDocument(operands, usage string) (doc []byte, ok bool, code int) {
	ok, code = c.parse(operands, func(fs *flag.FlagSet) { c.documentFlag(fs, &doc, usage) })
	return doc, ok, code
}

// optional is v, or nil for its zero value: a flag left out is a
// parameter not sent.
func optional[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// labelsText writes labels as k=v,k=v in key order.
func labelsText(l *apiclient.Labels) string {
	if l == nil || len(*l) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(*l))
	for k := range *l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + (*l)[k]
	}
	return oneLine(strings.Join(keys, ","))
}

// orDash is s, or "-" when it is empty or absent.
func orDash[T ~string](s *T) string {
	if s == nil || *s == "" {
		return "-"
	}
	return oneLine(string(*s))
}
