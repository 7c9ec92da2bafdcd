package main

import (
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
)

var errHelp = errors.New("help requested")

// setting is one common option: a flag, an environment variable and a key
// of the config file.
type setting struct {
	flag, env, usage string
}

var settings = []setting{
	{"server", "CREDSIGN_SERVER", "credsign base URL (https://…; http:// on loopback only)"},
	{"device", "CREDSIGN_DEVICE", "device id the token is bound to"},
	{"token-file", "CREDSIGN_TOKEN_FILE", "file holding the device token (read on every fetch)"},
	{"ca-file", "CREDSIGN_CA_FILE", "PEM bundle trusted for the credsign server, besides the system roots"},
	{"broker-ca-file", "CREDSIGN_BROKER_CA_FILE", "PEM bundle trusted for the MQTT broker, besides the system roots"},
	{"ttl", "CREDSIGN_TTL", "credential lifetime to ask for, such as 1h (default: the cloud's)"},
	{"keepalive", "CREDSIGN_KEEPALIVE", "MQTT keep-alive (default 60s)"},
	{"log-level", "CREDSIGN_LOG_LEVEL", "debug, info, warn or error"},
}

// command is a parsed command line.
type command struct {
	name   string
	values map[string]string // by flag name, after flag > env > file
	fs     *flag.FlagSet

	// Command flags.
	subs      topicList
	topic     topicList
	message   string
	pubTopic  string
	pubSocket string
	qos       int
	count     int
	verbose   bool
	format    string
	argv      []string

	stdin          io.Reader
	stdout, stderr io.Writer
}

// topicList is a repeatable string flag.
type topicList []string

func (t *topicList) String() string     { return strings.Join(*t, ",") }
func (t *topicList) Set(s string) error { *t = append(*t, s); return nil }

func parse(name string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) (*command, error) {
	c := &command{name: name, values: map[string]string{}, stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("credsign-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	flagVals := map[string]*string{}
	for _, s := range settings {
		flagVals[s.flag] = fs.String(s.flag, "", s.usage+" ($"+s.env+")")
	}
	config := fs.String("config", "", "optional file of CREDSIGN_*='value' lines, the variables named here ($CREDSIGN_CONFIG)")
	switch name {
	case "run":
		fs.Var(&c.subs, "sub", "topic filter to subscribe to and print (repeatable)")
		fs.StringVar(&c.pubTopic, "pub-topic", "", "publish each stdin line to this topic")
		fs.StringVar(&c.pubSocket, "pub-socket", "", "also publish each line written to this Unix socket (created mode 0600) to --pub-topic")
		fs.IntVar(&c.qos, "qos", 1, "QoS of subscriptions and publications")
	case "pub":
		fs.Var(&c.topic, "t", "topic to publish to")
		fs.StringVar(&c.message, "m", "", "message (default: all of stdin)")
		fs.IntVar(&c.qos, "q", 1, "QoS")
	case "sub":
		fs.Var(&c.topic, "t", "topic filter (repeatable)")
		fs.IntVar(&c.qos, "q", 1, "QoS")
		fs.IntVar(&c.count, "C", 0, "exit after this many messages (0: never)")
		fs.BoolVar(&c.verbose, "v", false, "print the topic before each message")
	case "creds":
		fs.StringVar(&c.format, "format", "json", "json or env")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, err
	}
	c.fs = fs
	switch {
	case name == "exec":
		c.argv = fs.Args()
		if len(c.argv) == 0 {
			return nil, errors.New("exec needs a command: exec [flags] -- CMD [ARG]")
		}
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
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
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			c.values[s.flag] = v
		}
		if set[s.flag] {
			c.values[s.flag] = *flagVals[s.flag]
		}
	}
	if c.pubSocket != "" && c.pubTopic == "" {
		return nil, errors.New("--pub-socket needs --pub-topic")
	}
	if c.qos < 0 || c.qos > 2 {
		return nil, fmt.Errorf("qos %d: want 0, 1 or 2", c.qos)
	}
	return c, nil
}

// readConfig reads a config file and maps its variables to flag names.
func readConfig(file string) ([]agent.EnvVar, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return configVars(f, file)
}

func configVars(r io.Reader, name string) ([]agent.EnvVar, error) {
	vars, err := agent.ParseEnv(r)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	out := make([]agent.EnvVar, 0, len(vars))
	for _, v := range vars {
		i := indexEnv(v.Name)
		if i < 0 {
			return nil, fmt.Errorf("config %s: unknown variable %s", name, v.Name)
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
		return 0, fmt.Errorf("--%s %q: want a duration such as 90s or 1h", name, v)
	}
	return d, nil
}

// logger logs to stderr at --log-level (default: the command's).
func (c *command) logger(def slog.Level) (*slog.Logger, error) {
	lvl := def
	if v := c.values["log-level"]; v != "" {
		if err := lvl.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", v)
		}
	}
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// source builds the credsign client from the common settings.
func (c *command) source() (*agent.HTTPSource, error) {
	ttl, err := c.duration("ttl")
	if err != nil {
		return nil, err
	}
	return agent.NewHTTPSource(agent.HTTPSourceConfig{
		Server: c.values["server"], DeviceID: c.values["device"], TokenFile: c.values["token-file"],
		CAFile: c.values["ca-file"], TTL: ttl,
	})
}

// agentConfig is the agent.Config shared by run, pub and sub.
func (c *command) agentConfig(def slog.Level) (agent.Config, error) {
	src, err := c.source()
	if err != nil {
		return agent.Config{}, err
	}
	log, err := c.logger(def)
	if err != nil {
		return agent.Config{}, err
	}
	roots, err := agent.CertPool(c.values["broker-ca-file"])
	if err != nil {
		return agent.Config{}, fmt.Errorf("broker CA bundle: %w", err)
	}
	ka, err := c.duration("keepalive")
	if err != nil {
		return agent.Config{}, err
	}
	if ka != 0 && (ka < 30*time.Second || ka > 1200*time.Second) {
		return agent.Config{}, fmt.Errorf("--keepalive %s: the clouds accept 30s to 1200s", ka)
	}
	return agent.Config{Source: src, BrokerRoots: roots, KeepAlive: ka, Logger: log}, nil
}

// exitError carries a child's exit status through run.
type exitError struct{ code int }

func (e exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

func asExit(err error, out *exitError) bool { return errors.As(err, out) }
