package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/credsign/credsign/api"
	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/service"
)

// usageError is bad input: printed as one line, exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// paramFlags collects repeated --param name=value.
type paramFlags map[string]any

func (p paramFlags) String() string { return "" }

func (p paramFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	if _, dup := p[name]; dup {
		return fmt.Errorf("param %q given twice", name)
	}
	p[name] = value
	return nil
}

// deviceDoc is the device document (docs/api.md), as --device reads it.
type deviceDoc struct {
	Cloud  string            `json:"cloud"`
	Params map[string]any    `json:"params"`
	Secret string            `json:"secret"`
	Labels map[string]string `json:"labels"`
}

// signFlags are the flags shared by sign and explain.
type signFlags struct {
	fs         *flag.FlagSet
	cloud      string
	params     paramFlags
	secret     string
	secretFile string
	device     string
	now        string
	ttl        string
	deviceID   string
	tokenKey   string
	issuer     string
}

func newSignFlags(name string) *signFlags {
	f := &signFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError), params: paramFlags{}}
	f.fs.StringVar(&f.cloud, "cloud", "", "cloud: one of "+cloudList()+" (see 'credsign clouds')")
	f.fs.Var(f.params, "param", "a cloud param as name=value; repeat for each")
	f.fs.StringVar(&f.secret, "secret", "", "the device secret (visible in the process list: prefer --secret-file)")
	f.fs.StringVar(&f.secretFile, "secret-file", "", "read the secret from `FILE` ('-' for standard input); one trailing newline is dropped")
	f.fs.StringVar(&f.device, "device", "", "read a device document {cloud, params, secret, labels} from `FILE` ('-' for standard input)")
	f.fs.StringVar(&f.now, "now", "", "issue time: RFC 3339 (fractional seconds allowed) or Unix seconds (default: the clock)")
	f.fs.StringVar(&f.ttl, "ttl", "", "lifetime: a Go duration such as 1h or 90s, or whole seconds (default 1h)")
	f.fs.StringVar(&f.deviceID, "device-id", "", "the device id (the token subject of jwt and aws; default their clientId param)")
	f.fs.StringVar(&f.tokenKey, "token-key", "", "jwt and aws: the token-signing private key, PKCS #8 PEM `FILE` (ES256, RS256 or EdDSA)")
	f.fs.StringVar(&f.issuer, "issuer", "urn:credsign:offline", "jwt and aws: the iss claim (the server's public URL)")
	return f
}

// request turns the parsed flags into a signing request.
func (f *signFlags) request(args []string, stdin io.Reader, clock func() time.Time) (cloud.Request, error) {
	f.fs.SetOutput(io.Discard)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cloud.Request{}, err
		}
		return cloud.Request{}, usagef("%v", err)
	}
	if f.fs.NArg() > 0 {
		return cloud.Request{}, usagef("unexpected argument %q", f.fs.Arg(0))
	}
	req := cloud.Request{Params: map[string]any{}}
	stdinUsed := false
	if f.device != "" {
		doc, err := readDevice(f.device, stdin)
		if err != nil {
			return cloud.Request{}, err
		}
		stdinUsed = f.device == "-"
		req.Cloud, req.Secret = doc.Cloud, doc.Secret
		for k, v := range doc.Params {
			req.Params[k] = v
		}
	}
	if f.cloud != "" {
		if req.Cloud != "" && req.Cloud != f.cloud {
			return cloud.Request{}, usagef("--cloud %s contradicts the device document's cloud %s", f.cloud, req.Cloud)
		}
		req.Cloud = f.cloud
	}
	if req.Cloud == "" {
		return cloud.Request{}, usagef("--cloud is required (or --device with a device document)")
	}
	for k, v := range f.params {
		req.Params[k] = v
	}
	switch {
	case f.secret != "" && f.secretFile != "":
		return cloud.Request{}, usagef("give the secret once: --secret or --secret-file, not both")
	case f.secret != "":
		req.Secret = f.secret
	case f.secretFile != "":
		if f.secretFile == "-" && stdinUsed {
			return cloud.Request{}, usagef("--device - and --secret-file - cannot both read standard input")
		}
		s, err := readSecret(f.secretFile, stdin)
		if err != nil {
			return cloud.Request{}, err
		}
		req.Secret = s
	}
	cl, known := registry.LookupCloud(req.Cloud)
	if req.Secret == "" && !(known && cl.SecretFormat == cloud.SecretNone) {
		return cloud.Request{}, usagef("a secret is required: --secret, --secret-file FILE, --secret-file - or a device document with one")
	}
	req.DeviceID, req.Issuer = f.deviceID, f.issuer
	if f.tokenKey != "" {
		if !known || !cl.Tokens {
			return cloud.Request{}, usagef("--token-key: %s tokens are not signed with a token key", req.Cloud)
		}
		b, err := os.ReadFile(f.tokenKey)
		if err != nil {
			return cloud.Request{}, usagef("--token-key: %v", pathError(err))
		}
		k, err := cloud.ParseTokenKeyPEM(b)
		if err != nil {
			return cloud.Request{}, usagef("--token-key %s: %v", f.tokenKey, strings.TrimPrefix(err.Error(), "signing: "))
		}
		req.TokenKey = k
	}
	now, err := parseNow(f.now, clock)
	if err != nil {
		return cloud.Request{}, err
	}
	req.Now = now
	if f.ttl != "" {
		ttl, err := parseTTL(f.ttl)
		if err != nil {
			return cloud.Request{}, err
		}
		req.TTL = ttl
	}
	return req, nil
}

func readDevice(path string, stdin io.Reader) (deviceDoc, error) {
	var r io.Reader = stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return deviceDoc{}, usagef("--device: %v", pathError(err))
		}
		defer file.Close()
		r = file
	}
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var doc deviceDoc
	if err := dec.Decode(&doc); err != nil {
		return deviceDoc{}, usagef("--device %s: not a device document: %s", path, jsonProblem(err))
	}
	if dec.More() {
		return deviceDoc{}, usagef("--device %s: more than one JSON value", path)
	}
	return doc, nil
}

// jsonProblem describes a JSON decoding error without quoting the input,
// which may hold the secret.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "invalid JSON"
}

func readSecret(path string, stdin io.Reader) (string, error) {
	var r io.Reader = stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return "", usagef("--secret-file: %v", pathError(err))
		}
		defer file.Close()
		r = file
	}
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(r), 64<<10))
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// pathError drops the Go op prefix from a file error: "open x: no such file"
// becomes "x: no such file or directory".
func pathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

func parseNow(s string, clock func() time.Time) (time.Time, error) {
	if s == "" {
		return clock(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 253402300799 {
			return time.Time{}, usagef("--now %s: Unix seconds out of range", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usagef("--now %q: want RFC 3339 (2026-11-23T10:00:00Z, fractional seconds allowed) or Unix seconds", s)
	}
	return t, nil
}

func parseTTL(s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > int64(1<<62/time.Second) || n < -int64(1<<62/time.Second) {
			return 0, usagef("--ttl %s: out of range", s)
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, usagef("--ttl %q: want a duration such as 1h, 30m or 90s, or whole seconds", s)
	}
	if d <= 0 {
		return 0, usagef("--ttl %s: must be positive", s)
	}
	return d, nil
}

// fail prints err as one line and returns the exit status for it.
func fail(stderr io.Writer, cmd string, err error) int {
	var ue *usageError
	var ie *cloud.InvalidError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "credsign %s: %s\n", cmd, ue.msg)
		return exitUsage
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "credsign %s: %s\n", cmd, flagName(ie))
		return exitUsage
	}
	fmt.Fprintf(stderr, "credsign %s: %v\n", cmd, err)
	return exitError
}

// flagName phrases a signing error in terms of the CLI's flags.
func flagName(ie *cloud.InvalidError) string {
	switch {
	case strings.HasPrefix(ie.Field, "params."):
		return "--param " + strings.TrimPrefix(ie.Field, "params.") + ": " + ie.Reason
	case ie.Field == "cloud", ie.Field == "ttl", ie.Field == "now", ie.Field == "issuer":
		return "--" + ie.Field + ": " + ie.Reason
	case ie.Field == "tokenKey":
		return "--token-key: " + ie.Reason
	}
	return ie.Field + ": " + ie.Reason
}

func printFlags(w io.Writer, f *signFlags, what string) {
	fmt.Fprintf(w, "usage: credsign %s --cloud CLOUD --param name=value ... (--secret S | --secret-file FILE|-) [--now T] [--ttl D]\n", f.fs.Name())
	fmt.Fprintf(w, "   or: credsign %s --device FILE|- [--param name=value ...] [--now T] [--ttl D]\n", f.fs.Name())
	fmt.Fprintf(w, "   or: credsign %s --cloud jwt|aws --token-key FILE [--issuer URL] [--device-id ID] --param name=value ... [--secret-file FILE]\n", f.fs.Name())
	fmt.Fprintf(w, "%s\n\nflags:\n", what)
	f.fs.SetOutput(w)
	f.fs.PrintDefaults()
}

// parseSign parses the command line of sign or explain (name) into a
// request; -h prints the usage with what, what the command does. When ok
// is false the command returns code.
func parseSign(name, what string, args []string, stdin io.Reader, stdout, stderr io.Writer) (req cloud.Request, code int, ok bool) {
	f := newSignFlags(name)
	req, err := f.request(args, stdin, time.Now)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printFlags(stdout, f, what)
		return req, exitOK, false
	case err != nil:
		return req, fail(stderr, name, err), false
	}
	return req, exitOK, true
}

func runSign(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	req, code, ok := parseSign("sign", "Derives MQTT credentials offline (no server, no store) and prints them as JSON.", args, stdin, stdout, stderr)
	if !ok {
		return code
	}
	creds, err := registry.Sign(req)
	if err != nil {
		return fail(stderr, "sign", err)
	}
	return writeJSON(stdout, stderr, creds)
}

func runExplain(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	req, code, ok := parseSign("explain", "Prints each step of the cloud's recipe (the exact string signed, the key and how it was decoded, the algorithm, the encoding) with the secret redacted, then the credentials.", args, stdin, stdout, stderr)
	if !ok {
		return code
	}
	creds, steps, err := registry.Explain(req)
	if err != nil {
		return fail(stderr, "explain", err)
	}
	for i, s := range steps {
		fmt.Fprintf(stdout, "%2d. %-10s %s\n", i+1, s.Name, s.Detail)
	}
	fmt.Fprintln(stdout)
	return writeJSON(stdout, stderr, creds)
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "credsign: write output: %v\n", err)
		return exitError
	}
	return exitOK
}

func runClouds(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("clouds", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the registry as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: credsign clouds [--json]\nLists the supported clouds and their params.")
			return exitOK
		}
		return fail(stderr, "clouds", usagef("%v", err))
	}
	if fs.NArg() > 0 {
		return fail(stderr, "clouds", usagef("unexpected argument %q", fs.Arg(0)))
	}
	// What `credsign serve` offers by default, in the shape of GET /v1/clouds.
	clouds := service.DescribeClouds(registry, service.DefaultMaxDeviceTTL)
	if *asJSON {
		return writeJSON(stdout, stderr, api.CloudList(clouds))
	}
	for _, c := range clouds {
		tokens := ""
		if c.Tokens {
			tokens = "; password: a JWT signed with --token-key"
		}
		note := ""
		if c.MaxTTLNote != "" {
			note = " (" + c.MaxTTLNote + ")"
		}
		fmt.Fprintf(stdout, "%s — %s (secret: %s%s; ttl seconds: default %d, max %d%s, device tokens at most %d)\n",
			c.Name, c.Title, c.SecretFormat, tokens, int64(c.DefaultTTL/time.Second), int64(c.MaxTTL/time.Second), note, int64(c.MaxDeviceTTL/time.Second))
		for _, p := range c.Params {
			req := "optional"
			if p.Required {
				req = "required"
			}
			extra := ""
			if p.Default != nil {
				extra = fmt.Sprintf(" default %v", p.Default)
			}
			if len(p.Allowed) > 0 {
				extra += fmt.Sprintf(" one of %v", p.Allowed)
			}
			fmt.Fprintf(stdout, "  %-15s %-8s %s%s. %s\n", p.Name, p.Type, req, extra, p.Description)
		}
	}
	return exitOK
}

// cloudList names the supported clouds, for the usage text.
func cloudList() string {
	var names []string
	for _, c := range registry.Clouds() {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}
