package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/credsign/credsign/agent"
)

// commands are the subcommands, by name.
var commands = map[string]spec{
	"run": {
		synopsis: "[flags] [--sub TOPIC]... [--sub-commands] [--pub-topic TOPIC | --pub-telemetry] [--pub-socket PATH]",
		help: `Connect and stay connected, retrying every failure with back-off. Print
"topic payload" for each message on the --sub topics (and, with
--sub-commands, on the cloud's commands topic); publish each line of stdin
(and of each connection to --pub-socket) to --pub-topic, or with
--pub-telemetry to the cloud's telemetry topic. The cloud's topics come
with each set of credentials, so a device re-registered on another cloud
follows it at its next reconnection.
`,
		broker: true,
		flags: func(fs *flag.FlagSet, c *command) {
			fs.Var(&c.subs, "sub", "topic `FILTER` to subscribe to and print (repeatable)")
			fs.BoolVar(&c.commands, "sub-commands", false, "also subscribe to the cloud's commands topic and print what arrives")
			fs.StringVar(&c.pubTopic, "pub-topic", "", "publish each stdin line to this topic")
			fs.BoolVar(&c.telemetry, "pub-telemetry", false, "publish each stdin line to the cloud's telemetry topic")
			fs.StringVar(&c.pubSocket, "pub-socket", "", "also publish each line written to this Unix socket (created mode 0600) as stdin's")
			fs.IntVar(&c.qos, "qos", 1, "QoS of subscriptions and publications")
		},
		check: func(c *command) error {
			if c.pubTopic != "" && c.telemetry {
				return usagef("--pub-topic and --pub-telemetry: give one")
			}
			if c.pubSocket != "" && c.pubTopic == "" && !c.telemetry {
				return usagef("--pub-socket needs --pub-topic or --pub-telemetry")
			}
			return nil
		},
		run: cmdRun,
	},
	"pub": {
		synopsis: "[flags] (-t TOPIC | --telemetry) [-m MESSAGE]",
		help: `Publish one message (-m, or all of stdin) to TOPIC (-t), or with
--telemetry to the telemetry topic credsign names for the device's cloud,
wait for the broker's acknowledgement and exit. Stops with status 1 at once
when credsign or the broker refuses for good, or after --timeout.
`,
		broker: true, timeout: true,
		flags: func(fs *flag.FlagSet, c *command) {
			fs.Var(&c.topic, "t", "`TOPIC` to publish to")
			fs.BoolVar(&c.telemetry, "telemetry", false, "publish to the cloud's telemetry topic instead of -t")
			fs.StringVar(&c.message, "m", "", "message (default: all of stdin)")
			fs.IntVar(&c.qos, "q", 1, "QoS")
		},
		check: func(c *command) error {
			if len(c.topic)+btoi(c.telemetry) != 1 {
				return usagef("pub needs exactly one -t TOPIC or --telemetry")
			}
			return nil
		},
		run: cmdPub,
	},
	"sub": {
		synopsis: "[flags] (-t TOPIC... | --commands) [-C COUNT] [-v]",
		help: `Subscribe to each TOPIC filter (-t, repeatable) and, with --commands, to
the commands topic credsign names for the device's cloud, and print the
messages that arrive; exit after -C of them. Stops with status 1 at once
when credsign or the broker refuses for good, or when not subscribed within
--timeout; once subscribed it runs until -C messages or a signal.
`,
		broker: true, timeout: true,
		flags: func(fs *flag.FlagSet, c *command) {
			fs.Var(&c.topic, "t", "topic `FILTER` to subscribe to (repeatable)")
			fs.BoolVar(&c.commands, "commands", false, "subscribe to the cloud's commands topic")
			fs.IntVar(&c.qos, "q", 1, "QoS")
			fs.IntVar(&c.count, "C", 0, "exit after this many messages (0: never)")
			fs.BoolVar(&c.verbose, "v", false, "print the topic before each message")
		},
		check: func(c *command) error {
			if len(c.topic) == 0 && !c.commands {
				return usagef("sub needs -t TOPIC or --commands")
			}
			if c.count < 0 {
				return usagef("-C %d: want 0 or more", c.count)
			}
			return nil
		},
		run: cmdSub,
	},
	"enrol": {
		synopsis: "[flags] --enrolment-token-file FILE --device ID --token-file FILE",
		help: `Enrol this device with its enrolment token (flashed with the firmware):
credsign creates device ID in the token's group and answers with the
device's own token, which is written to --token-file (created mode 0600,
never printed) for run, pub, sub, creds and exec to use. Does nothing and
exits 0 when --token-file exists (the device enrolled before). Retries
what may clear (the network, 429, 503) until --timeout; stops with status 1
at once when credsign refuses (a revoked, expired or used-up enrolment
token, an ID outside its pattern, a device that exists).
--device-id and --token-out are synonyms of --device and --token-file.
With --key-file or --tpm-key-file instead of --token-file, the device key
(created when absent) is bound at enrolment and no token is issued; a TPM
key is also attested (credential activation against the TPM's endorsement
key, then TPM2_Certify), which a group with requireAttestation "tpm" needs.
`,
		enrol: true, timeout: true,
		flags: func(fs *flag.FlagSet, c *command) {
			fs.StringVar(&c.deviceID, "device-id", "", "same as --device")
			fs.StringVar(&c.tokenOut, "token-out", "", "same as --token-file")
			fs.BoolFunc("tpm-attest", "with --tpm-key-file: prove that the key is in the TPM (default true; false for a server without TPM EK CAs)", func(v string) error {
				b, err := strconv.ParseBool(v)
				c.noAttest = !b
				return err
			})
		},
		check: func(c *command) error {
			if c.deviceID != "" {
				c.values["device"] = c.deviceID
			}
			if c.tokenOut != "" {
				c.values["token-file"] = c.tokenOut
			}
			return nil
		},
		run: cmdEnrol,
	},
	"creds": {
		synopsis: "[flags] [--format json|env]",
		help: `Fetch fresh credentials and print them: the Credentials JSON, or
CREDSIGN_MQTT_*='…' lines a shell can eval. Stops with status 1 at once when
credsign refuses for good, or after --timeout.
`,
		timeout: true,
		flags: func(fs *flag.FlagSet, c *command) {
			fs.StringVar(&c.format, "format", "json", "json or env")
		},
		check: func(c *command) error {
			if c.format != "json" && c.format != "env" {
				return usagef("--format %q: want json or env", c.format)
			}
			return nil
		},
		run: cmdCreds,
	},
	"keygen": {
		synopsis: "--key-file FILE",
		help: `Create a device key (ECDSA P-256) in --key-file, mode 0600, unless the
file exists, and print its public JWK and key ID as one JSON line
{"kid": …, "jwk": {…}} for POST /v1/devices/{id}/keys. The private key
never leaves the file. With a key file, every call carries a DPoP proof
signed with it instead of a bearer token (docs/devices.md).
`,
		run: cmdKeygen,
	},
	"exec": {
		synopsis: "[flags] -- CMD [ARG]...",
		help: `Run CMD with the credentials in CREDSIGN_MQTT_HOST, _PORT, _TLS,
_CLIENT_ID, _USERNAME, _PASSWORD, _EXPIRES_AT and _CLOUD; when they are due
for refresh, stop it (SIGTERM, SIGKILL after 10s) and start it again with
fresh ones. Failures are retried with back-off. Exits with CMD's status.
`,
		check: func(c *command) error {
			if len(c.argv) == 0 {
				return usagef("exec needs a command: exec [flags] -- CMD [ARG]...")
			}
			return nil
		},
		run: cmdExec,
	},
}

// cmdRun keeps the device connected, prints messages on --sub topics and
// publishes stdin lines to --pub-topic.
func cmdRun(ctx context.Context, c *command) error {
	cfg, err := c.agentConfig(slog.LevelInfo)
	if err != nil {
		return err
	}
	cfg.Subscriptions = c.subscriptions(c.subs)
	var outMu sync.Mutex
	cfg.OnMessage = func(m agent.Message) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(c.stdout, "%s %s\n", m.Topic, m.Payload)
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	publishLines := func(r io.Reader) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for sc.Scan() {
			if err := c.publish(ctx, a, []byte(sc.Text())); err != nil {
				cfg.Logger.Error("publish failed", "error", err)
			}
		}
	}
	if c.pubTopic != "" || c.telemetry {
		go publishLines(c.stdin)
	}
	if c.pubSocket != "" {
		ln, err := listenUnix(c.pubSocket)
		if err != nil {
			return err
		}
		defer ln.Close()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return // closed
				}
				go func() {
					defer conn.Close()
					publishLines(conn)
				}()
			}
		}()
	}
	return a.Run(ctx)
}

// listenUnix listens on a Unix socket only this user may write to,
// replacing a stale socket left by an earlier run.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--pub-socket: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("--pub-socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("--pub-socket: %w", err)
	}
	return ln, nil
}

// cmdPub publishes one message and exits once the broker has it.
func cmdPub(ctx context.Context, c *command) error {
	cfg, err := c.agentConfig(slog.LevelError)
	if err != nil {
		return err
	}
	msg := []byte(c.message)
	if !c.hasMsg {
		if msg, err = io.ReadAll(c.stdin); err != nil {
			return fmt.Errorf("read message from stdin: %w", err)
		}
	}
	return c.oneShot(ctx, cfg, false, func(ctx context.Context, a *agent.Agent) error {
		return c.publish(ctx, a, msg)
	})
}

// publish sends msg to the telemetry topic (--telemetry, --pub-telemetry)
// or to the topic given (-t, --pub-topic).
func (c *command) publish(ctx context.Context, a *agent.Agent, msg []byte) error {
	if c.telemetry {
		return a.PublishTelemetry(ctx, msg, byte(c.qos))
	}
	topic := c.pubTopic
	if c.name == "pub" {
		topic = c.topic[0]
	}
	return a.Publish(ctx, topic, msg, byte(c.qos))
}

// subscriptions are the filters given, and the cloud's commands topic when
// asked for (--commands, --sub-commands).
func (c *command) subscriptions(filters []string) []agent.Subscription {
	var out []agent.Subscription
	for _, t := range filters {
		out = append(out, agent.Subscription{Topic: t, QoS: byte(c.qos)})
	}
	if c.commands {
		out = append(out, agent.Subscription{Commands: true, QoS: byte(c.qos)})
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cmdSub prints messages on -t topics, and exits after -C of them.
func cmdSub(ctx context.Context, c *command) error {
	cfg, err := c.agentConfig(slog.LevelError)
	if err != nil {
		return err
	}
	cfg.Subscriptions = c.subscriptions(c.topic)
	enough := make(chan struct{})
	var mu sync.Mutex
	n := 0
	cfg.OnMessage = func(m agent.Message) {
		mu.Lock()
		defer mu.Unlock()
		if c.count > 0 && n >= c.count {
			return
		}
		if c.verbose {
			fmt.Fprintf(c.stdout, "%s %s\n", m.Topic, m.Payload)
		} else {
			fmt.Fprintf(c.stdout, "%s\n", m.Payload)
		}
		if n++; n == c.count {
			close(enough)
		}
	}
	return c.oneShot(ctx, cfg, true, func(ctx context.Context, _ *agent.Agent) error {
		select {
		case <-enough:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
}

// cmdCreds prints fresh credentials: the one place a password is printed,
// because the user asked for it.
func cmdCreds(ctx context.Context, c *command) error {
	src, log, err := c.sourceAndLog(slog.LevelError)
	if err != nil {
		return err
	}
	ctx, cancel, last := c.deadline(ctx)
	defer cancel(nil)
	cr, err := agent.FetchWithRetry(ctx, src, agent.FetchConfig{Fatal: agent.Permanent, Logger: log, OnEvent: last.record})
	if err != nil {
		return last.explain(ctx, err)
	}
	if c.format == "env" {
		return agent.FormatEnv(c.stdout, cr.Env())
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cr); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}

// cmdEnrol enrols the device and writes its device token file; it prints
// one line saying so, never the token.
func cmdEnrol(ctx context.Context, c *command) error {
	log, err := c.logger(slog.LevelError)
	if err != nil {
		return err
	}
	cfg := agent.EnrolConfig{Server: c.values["server"], DeviceID: c.values["device"], TokenFile: c.values["token-file"],
		EnrolmentTokenFile: c.values["enrolment-token-file"], Logger: log}
	for _, need := range []struct{ key, what string }{
		{"server", "--server (CREDSIGN_SERVER)"}, {"device", "--device (CREDSIGN_DEVICE)"},
		{"enrolment-token-file", "--enrolment-token-file (CREDSIGN_ENROLMENT_TOKEN_FILE)"},
	} {
		if c.values[need.key] == "" {
			return usagef("enrol needs %s", need.what)
		}
	}
	if c.values["token-file"] == "" && c.values["key-file"] == "" && c.values["tpm-key-file"] == "" {
		return usagef("enrol needs --token-file (CREDSIGN_TOKEN_FILE), --key-file (CREDSIGN_KEY_FILE) or --tpm-key-file (CREDSIGN_TPM_KEY_FILE)")
	}
	if cfg.Prover, err = c.prover(true); err != nil {
		return err
	}
	if c.attest != nil && !c.noAttest {
		cfg.Attest = c.attest
	}
	if f := c.values["ca-file"]; f != "" {
		if cfg.Roots, err = agent.CertPool(f); err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
	}
	ctx, cancel, _ := c.deadline(ctx)
	defer cancel(nil)
	e, err := agent.Enrol(ctx, cfg)
	switch {
	case errors.Is(err, agent.ErrEnrolled):
		fmt.Fprintf(c.stderr, "credsign-agent enrol: %v; nothing to do\n", err)
		return nil
	case err != nil:
		var fe *agent.FetchError
		if errors.As(err, &fe) && fe.Reason == "" && (fe.Status == http.StatusUnauthorized || fe.Status == http.StatusForbidden) {
			return fmt.Errorf("%w (check the enrolment token in --enrolment-token-file, and --device)", err)
		}
		if h, ok := certHint(err); ok {
			return h
		}
		return err
	}
	if e.KeyID != "" {
		where := "key in " + c.values["key-file"]
		if f := c.values["tpm-key-file"]; f != "" {
			where = "key in the TPM, wrapped in " + f
			if cfg.Attest != nil {
				where += ", attested"
			}
		}
		fmt.Fprintf(c.stdout, "enrolled %s in group %s; device key %s bound (no token issued), %s\n", e.DeviceID, e.Group, e.KeyID, where)
		return nil
	}
	fmt.Fprintf(c.stdout, "enrolled %s in group %s; device token written to %s\n", e.DeviceID, e.Group, cfg.TokenFile)
	return nil
}

// cmdKeygen creates the device key file (when absent) and prints the
// public key: one JSON line {"kid", "jwk"}.
func cmdKeygen(_ context.Context, c *command) error {
	if c.values["key-file"] == "" {
		return usagef("keygen needs --key-file (CREDSIGN_KEY_FILE)")
	}
	p, err := c.prover(true)
	if err != nil {
		return err
	}
	s, err := c.deviceSigner(false)
	if err != nil {
		return err
	}
	jwk, err := agent.PublicJWK(s)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "{\"kid\":%q,\"jwk\":%s}\n", p.KeyID(), jwk)
	return nil
}

// cmdExec runs a command with credentials in its environment, restarting it
// when they are refreshed; it exits with the command's status.
func cmdExec(ctx context.Context, c *command) error {
	src, log, err := c.sourceAndLog(slog.LevelInfo)
	if err != nil {
		return err
	}
	err = agent.Exec(ctx, agent.ExecConfig{Source: src, Argv: c.argv, Stdin: c.stdin, Stdout: c.stdout, Stderr: c.stderr, Logger: log})
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return exitError{ee.ExitCode()}
	}
	return err
}

// oneShot runs an agent while f runs, as pub and sub do: an error that
// waiting will not clear (agent.Permanent) ends both at once with that
// error, and so does --timeout, which with untilConnected only bounds the
// time until the broker accepts the connection.
func (c *command) oneShot(ctx context.Context, cfg agent.Config, untilConnected bool, f func(context.Context, *agent.Agent) error) error {
	ctx, cancel, last := c.deadline(ctx)
	defer cancel(nil)
	cfg.Fatal = agent.Permanent
	cfg.OnEvent = func(e agent.Event) {
		last.record(e)
		if e.Kind == agent.EventConnected && untilConnected {
			last.connected()
		}
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		err := a.Run(ctx)
		cancel(err) // a fatal error ends f too
		done <- err
	}()
	err = f(ctx, a)
	cancel(nil)
	if runErr := <-done; err != nil && agent.Permanent(runErr) {
		return hint(runErr)
	}
	if err != nil {
		return last.explain(ctx, err)
	}
	return nil
}

// hint adds what to check to a refusal from credsign of the token or the
// device, and to a certificate (the broker's or credsign's) that did not
// verify.
func hint(err error) error {
	if h, ok := certHint(err); ok {
		return h
	}
	var fe *agent.FetchError
	if errors.As(err, &fe) {
		switch fe.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return fmt.Errorf("%w (check --device, and the token in --token-file)", err)
		}
	}
	return err
}

// certHint adds what to check to a certificate that did not verify, the
// broker's or credsign's; false for other errors.
func certHint(err error) (error, bool) {
	var cve *tls.CertificateVerificationError
	switch {
	case errors.Is(err, agent.ErrBrokerCertificate):
		return fmt.Errorf("%w (check --broker-ca-file, and the broker host registered in credsign)", err), true
	case errors.As(err, &cve):
		return fmt.Errorf("%w (check --ca-file, and --server)", err), true
	}
	return err, false
}

// timedOut ends a one-shot command's context after --timeout.
type timedOut struct{ after time.Duration }

func (t timedOut) Error() string { return fmt.Sprintf("timed out after %s (--timeout)", t.after) }

// attempts remembers the last failure of a one-shot command, which is the
// cause its one line names when it times out.
type attempts struct {
	mu    sync.Mutex
	last  error
	timer *time.Timer
}

// deadline returns ctx bounded by --timeout, and the attempts that explain
// an error once it ends.
func (c *command) deadline(ctx context.Context) (context.Context, context.CancelCauseFunc, *attempts) {
	ctx, cancel := context.WithCancelCause(ctx)
	at := &attempts{}
	if c.timeout > 0 {
		t := time.AfterFunc(c.timeout, func() { cancel(timedOut{c.timeout}) })
		at.timer = t
		return ctx, func(err error) { t.Stop(); cancel(err) }, at
	}
	return ctx, cancel, at
}

// record keeps the error of a failed step, unless the step failed because
// the command was ending.
func (a *attempts) record(e agent.Event) {
	var to timedOut
	if e.Err != nil && !errors.As(e.Err, &to) && !errors.Is(e.Err, context.Canceled) {
		a.mu.Lock()
		a.last = e.Err
		a.mu.Unlock()
	}
}

// connected stops the --timeout clock.
func (a *attempts) connected() {
	if a.timer != nil {
		a.timer.Stop()
	}
}

// explain turns err, met as ctx ended, into the command's one line: a
// permanent refusal as it is, a timeout with the last failure seen.
func (a *attempts) explain(ctx context.Context, err error) error {
	if agent.Permanent(err) {
		return hint(err)
	}
	var to timedOut
	if !errors.As(context.Cause(ctx), &to) {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last == nil {
		return to
	}
	return fmt.Errorf("%w; last error: %w", to, a.last)
}
