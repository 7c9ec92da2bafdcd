package main

import (
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/agent/client"
	"github.com/credsign/credsign/internal/cli"
)

var errHelp = errors.New("help requested")

// usageError is a wrong command line or setting: one line on stderr, exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// setting is one common option: a flag, an environment variable and a key
// of the config file.
type setting struct {
	flag, env, usage string
	broker           bool // only for the commands that connect (run, pub, sub)
	enrol            bool // only for enrol
}

// The server and the token file are spelled as for every client of the API
// (internal/cli): --server/$CREDSIGN_SERVER, --token-file/$CREDSIGN_TOKEN_FILE.
var settings = []setting{
	{cli.ServerFlag, cli.ServerEnv, "credsign base URL (https://…; http:// on loopback only)", false, false},
	{"device", "CREDSIGN_DEVICE", "device id the token is bound to", false, false},
	{cli.TokenFileFlag, cli.TokenFileEnv, "file holding the device token (read on every fetch)", false, false},
	{"key-file", "CREDSIGN_KEY_FILE", "file holding the device key (PKCS#8 PEM, ECDSA P-256 or Ed25519): every call carries a DPoP proof signed with it instead of a token; enrol and keygen create it (mode 0600) when absent", false, false},
	{"tpm", "CREDSIGN_TPM", "the TPM holding the device key: a device (default /dev/tpmrm0) or tcp:HOST:PORT for a TPM simulator", false, false},
	{"tpm-key-file", "CREDSIGN_TPM_KEY_FILE", "file of the device key wrapped by the TPM (TSS2 PRIVATE KEY PEM): every call carries a DPoP proof signed in the TPM; enrol and tpm-key create the key in the TPM when the file is absent, and enrol attests it", false, false},
	{"ca-file", "CREDSIGN_CA_FILE", "PEM bundle trusted for the credsign server, besides the system roots", false, false},
	{"broker-ca-file", "CREDSIGN_BROKER_CA_FILE", "PEM bundle trusted for the MQTT broker, besides the system roots", true, false},
	{"ttl", "CREDSIGN_TTL", "credential lifetime to ask for, such as 1h (default: the cloud's)", false, false},
	{"keepalive", "CREDSIGN_KEEPALIVE", "MQTT keep-alive, 30s to 1200s (default 60s)", true, false},
	{"log-level", "CREDSIGN_LOG_LEVEL", "debug, info, warn or error (default: info for run and exec, error otherwise)", false, false},
	{flag: "enrolment-token-file", env: "CREDSIGN_ENROLMENT_TOKEN_FILE", usage: "file holding the enrolment token (cse_…)", enrol: true},
}

// spec describes a command: its synopsis and help, its own flags, and the
// checks of its command line.
type spec struct {
	synopsis string // after "credsign-agent NAME "
	help     string
	broker   bool // connects to the broker: takes the broker settings
	enrol    bool // enrols: takes the enrolment settings
	timeout  bool // one-shot: takes --timeout
	flags    func(*flag.FlagSet, *command)
	check    func(*command) error
	run      func(context.Context, *command) error
}

// command is a parsed command line.
type command struct {
	name   string
	values map[string]string // by flag name, after flag > env > file

	// Command flags.
	subs      topicList
	topic     topicList
	message   string
	hasMsg    bool
	pubTopic  string
	pubSocket string
	telemetry bool // pub --telemetry, run --pub-telemetry
	commands  bool // sub --commands, run --sub-commands
	qos       int
	count     int
	verbose   bool
	format    string
	deviceID  string // enrol --device-id, a synonym of --device
	tokenOut  string // enrol --token-out, a synonym of --token-file
	timeout   time.Duration
	argv      []string
	noAttest  bool // enrol --tpm-attest=false

	// attest, set by a TPM device key, runs TPM attestation at enrolment.
	attest func(context.Context, *client.ClientWithResponses, client.RequestEditorFn, string) (*client.TpmAttestation, error)
	// closers release what the command opened (the TPM), last first.
	closers []func() error

	stdin          io.Reader
	stdout, stderr io.Writer
}

// topicList is a repeatable string flag.
type topicList []string

func (t *topicList) String() string     { return strings.Join(*t, ",") }
func (t *topicList) Set(s string) error { *t = append(*t, s); return nil }

// parse reads the command line of command name (a key of commands); it
// returns errHelp after printing the command's help to stdout for -h, and a
// usageError for anything wrong.
func parse(name string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) (*command, error) {
	sp := commands[name]
	c := &command{name: name, values: map[string]string{}, stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("credsign-agent "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors become one line; -h prints help below
	fs.Usage = func() {}
	flagVals := map[string]*string{}
	for _, s := range settings {
		if (!s.broker || sp.broker) && (!s.enrol || sp.enrol) {
			flagVals[s.flag] = fs.String(s.flag, "", s.usage+" ($"+s.env+")")
		}
	}
	config := fs.String("config", "", "optional file of CREDSIGN_*='value' lines, the variables named here ($CREDSIGN_CONFIG)")
	if sp.timeout {
		fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up (exit 1) after this long; 0 waits for ever")
	}
	if sp.flags != nil {
		sp.flags(fs, c)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, name, sp, fs)
			return nil, errHelp
		}
		return nil, usageError{err}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.hasMsg = set["m"]
	c.argv = fs.Args()
	if name != "exec" && fs.NArg() > 0 {
		return nil, usagef("unexpected arguments %q", fs.Args())
	}

	// Lowest precedence first: file, environment, flags.
	file := *config
	if file == "" {
		file = getenv("CREDSIGN_CONFIG")
	}
	if file != "" {
		vars, err := readConfig(file)
		if err != nil {
			return nil, err
		}
		for _, v := range vars {
			c.values[v.Name] = v.Value
		}
	}
	for _, s := range settings {
		if _, taken := flagVals[s.flag]; !taken {
			continue
		}
		if v := getenv(s.env); v != "" {
			c.values[s.flag] = v
		}
		if set[s.flag] {
			c.values[s.flag] = *flagVals[s.flag]
		}
	}
	if c.qos < 0 || c.qos > 2 {
		return nil, usagef("qos %d: want 0, 1 or 2", c.qos)
	}
	if c.timeout < 0 {
		return nil, usagef("--timeout %s: want 0 or more", c.timeout)
	}
	if sp.check != nil {
		if err := sp.check(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func printHelp(w io.Writer, name string, sp spec, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: credsign-agent %s %s\n\n%s\nflags:\n", name, sp.synopsis, sp.help)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// readConfig reads a config file and maps its variables to flag names. A
// file that cannot be read is a usage error like a wrong flag.
func readConfig(file string) ([]agent.EnvVar, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, usageError{fmt.Errorf("config: %w", err)}
	}
	defer f.Close()
	return configVars(f, file)
}

func configVars(r io.Reader, name string) ([]agent.EnvVar, error) {
	vars, err := agent.ParseEnv(r)
	if err != nil {
		return nil, usageError{fmt.Errorf("config %s: %w", name, err)}
	}
	out := make([]agent.EnvVar, 0, len(vars))
	for _, v := range vars {
		i := indexEnv(v.Name)
		if i < 0 {
			return nil, usagef("config %s: unknown variable %s", name, v.Name)
		}
		out = append(out, agent.EnvVar{Name: settings[i].flag, Value: v.Value})
	}
	return out, nil
}

func indexEnv(env string) int {
	for i, s := range settings {
		if s.env == env {
			return i
		}
	}
	return -1
}

func (c *command) duration(name string) (time.Duration, error) {
	v := c.values[name]
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, usagef("--%s %q: want a duration such as 90s or 1h", name, v)
	}
	return d, nil
}

// logger logs the server's JSON lines to stderr at --log-level (default:
// the command's).
func (c *command) logger(def slog.Level) (*slog.Logger, error) {
	lvl := def
	if v := c.values["log-level"]; v != "" {
		var err error
		if lvl, err = cli.ParseLevel(v); err != nil {
			return nil, usageError{err}
		}
	}
	return cli.Logger(c.stderr, lvl), nil
}

// source builds the credsign client from the common settings.
func (c *command) source() (*agent.HTTPSource, error) {
	ttl, err := c.duration("ttl")
	if err != nil {
		return nil, err
	}
	cfg := agent.HTTPSourceConfig{Server: c.values["server"], DeviceID: c.values["device"], TokenFile: c.values["token-file"], TTL: ttl}
	if cfg.Prover, err = c.prover(false); err != nil {
		return nil, err
	}
	if f := c.values["ca-file"]; f != "" {
		if cfg.Roots, err = agent.CertPool(f); err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
	}
	src, err := agent.NewHTTPSource(cfg)
	if err != nil {
		return nil, usageError{err}
	}
	return src, nil
}

// openTPMKey loads (create: creates first when its file is missing) the
// device key in the TPM the settings name; set by tpm.go, nil in a build
// without TPM support (build tag notpm).
var openTPMKey func(c *command, create bool) (crypto.Signer, error)

// close releases what the command opened.
func (c *command) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		_ = c.closers[i]()
	}
	c.closers = nil
}

// deviceSigner returns the device key the settings name (--key-file or
// --tpm-key-file), nil when none; create makes a key that does not exist.
func (c *command) deviceSigner(create bool) (crypto.Signer, error) {
	path := c.values["key-file"]
	if c.values["tpm-key-file"] != "" {
		if path != "" {
			return nil, usagef("--key-file and --tpm-key-file name two device keys: give one")
		}
		if openTPMKey == nil {
			return nil, usagef("--tpm-key-file: this credsign-agent is built without TPM support")
		}
		return openTPMKey(c, create)
	}
	if path == "" {
		return nil, nil
	}
	load := agent.LoadKeyFile
	if create {
		load = agent.LoadOrGenerateKeyFile
	}
	s, err := load(path)
	if err != nil {
		return nil, fmt.Errorf("--key-file: %w", err)
	}
	return s, nil
}

// prover returns the signer of proofs for the device key, nil when the
// settings name none.
func (c *command) prover(create bool) (*agent.Prover, error) {
	s, err := c.deviceSigner(create)
	if err != nil || s == nil {
		return nil, err
	}
	p, err := agent.NewProver(s)
	if err != nil {
		return nil, fmt.Errorf("--key-file: %w", err)
	}
	return p, nil
}

// sourceAndLog returns the credsign client and the logger (at def unless
// --log-level says otherwise) every command needs.
func (c *command) sourceAndLog(def slog.Level) (*agent.HTTPSource, *slog.Logger, error) {
	log, err := c.logger(def)
	if err != nil {
		return nil, nil, err
	}
	src, err := c.source()
	if err != nil {
		return nil, nil, err
	}
	return src, log, nil
}

// agentConfig is the agent.Config shared by run, pub and sub.
func (c *command) agentConfig(def slog.Level) (agent.Config, error) {
	ka, err := c.duration("keepalive")
	if err != nil {
		return agent.Config{}, err
	}
	if ka != 0 && (ka < 30*time.Second || ka > 1200*time.Second) {
		return agent.Config{}, usagef("--keepalive %s: the clouds accept 30s to 1200s", ka)
	}
	src, log, err := c.sourceAndLog(def)
	if err != nil {
		return agent.Config{}, err
	}
	roots, err := agent.CertPool(c.values["broker-ca-file"])
	if err != nil {
		return agent.Config{}, fmt.Errorf("--broker-ca-file: %w", err)
	}
	return agent.Config{Source: src, BrokerRoots: roots, KeepAlive: ka, Logger: log}, nil
}

// exitError carries a child's exit status through run.
type exitError struct{ code int }

func (e exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }
