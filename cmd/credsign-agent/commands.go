package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"

	"github.com/credsign/credsign/agent"
)

// cmdRun keeps the device connected, prints messages on --sub topics and
// publishes stdin lines to --pub-topic.
func cmdRun(ctx context.Context, c *command) error {
	cfg, err := c.agentConfig(slog.LevelInfo)
	if err != nil {
		return err
	}
	for _, t := range c.subs {
		cfg.Subscriptions = append(cfg.Subscriptions, agent.Subscription{Topic: t, QoS: byte(c.qos)})
	}
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
			if err := a.Publish(ctx, c.pubTopic, []byte(sc.Text()), byte(c.qos)); err != nil {
				cfg.Logger.Error("publish failed", "topic", c.pubTopic, "err", err)
			}
		}
	}
	if c.pubTopic != "" {
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
			return nil, fmt.Errorf("remove stale socket: %w", err)
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
	if len(c.topic) != 1 {
		return errors.New("pub needs exactly one -t TOPIC")
	}
	msg := []byte(c.message)
	if c.message == "" {
		b, err := io.ReadAll(c.stdin)
		if err != nil {
			return fmt.Errorf("read message from stdin: %w", err)
		}
		msg = b
	}
	cfg, err := c.agentConfig(slog.LevelWarn)
	if err != nil {
		return err
	}
	return withAgent(ctx, cfg, func(ctx context.Context, a *agent.Agent) error {
		return a.Publish(ctx, c.topic[0], msg, byte(c.qos))
	})
}

// cmdSub prints messages on -t topics, and exits after -C of them.
func cmdSub(ctx context.Context, c *command) error {
	if len(c.topic) == 0 {
		return errors.New("sub needs at least one -t TOPIC")
	}
	cfg, err := c.agentConfig(slog.LevelWarn)
	if err != nil {
		return err
	}
	for _, t := range c.topic {
		cfg.Subscriptions = append(cfg.Subscriptions, agent.Subscription{Topic: t, QoS: byte(c.qos)})
	}
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
	return withAgent(ctx, cfg, func(ctx context.Context, _ *agent.Agent) error {
		select {
		case <-enough:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
}

// withAgent runs an agent while f runs. An answer from credsign that
// waiting cannot change (see oneShot) ends both with that answer.
func withAgent(ctx context.Context, cfg agent.Config, f func(context.Context, *agent.Agent) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cfg.Source = oneShot(cfg.Source, cancel)
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	err = f(ctx, a)
	cancel(nil)
	<-done
	if fe := fatalCause(ctx); fe != nil {
		return fe
	}
	return err
}

// fatalFetch is a credsign answer that retrying will not change.
type fatalFetch struct{ err error }

func (f *fatalFetch) Error() string {
	return f.err.Error() + " (check --device, and the token in --token-file)"
}

func (f *fatalFetch) Unwrap() error { return f.err }

// oneShot wraps the source of the one-shot commands (pub, sub, creds): a
// 401, 403 or 404 from credsign (a wrong or revoked token, a token for
// another device, an unknown device) stops them at once with that answer,
// where run and exec keep retrying with back-off (a long-running agent may
// get its token file rotated or its device registered meanwhile). Without
// it a script calling `creds` with a bad token would wait forever.
func oneShot(src agent.Source, stop context.CancelCauseFunc) agent.Source {
	return agent.SourceFunc(func(ctx context.Context) (agent.Credentials, error) {
		c, err := src.Fetch(ctx)
		var fe *agent.FetchError
		if errors.As(err, &fe) {
			switch fe.Status {
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
				stop(&fatalFetch{err})
			}
		}
		return c, err
	})
}

// fatalCause is the fatalFetch that ended ctx, or nil.
func fatalCause(ctx context.Context) error {
	var ff *fatalFetch
	if errors.As(context.Cause(ctx), &ff) {
		return ff
	}
	return nil
}

// cmdCreds prints fresh credentials: the one place a password is printed,
// because the user asked for it.
func cmdCreds(ctx context.Context, c *command) error {
	src, err := c.source()
	if err != nil {
		return err
	}
	log, err := c.logger(slog.LevelWarn)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cr, err := agent.FetchWithRetry(ctx, oneShot(src, cancel), agent.Backoff{}, log)
	if fe := fatalCause(ctx); fe != nil {
		return fe
	}
	if err != nil {
		return err
	}
	switch c.format {
	case "json":
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cr); err != nil {
			return fmt.Errorf("write credentials: %w", err)
		}
		return nil
	case "env":
		return agent.FormatEnv(c.stdout, cr.Env())
	}
	return fmt.Errorf("--format %q: want json or env", c.format)
}

// cmdExec runs a command with credentials in its environment, restarting it
// when they are refreshed; it exits with the command's status.
func cmdExec(ctx context.Context, c *command) error {
	src, err := c.source()
	if err != nil {
		return err
	}
	log, err := c.logger(slog.LevelInfo)
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
