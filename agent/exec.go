package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// FetchConfig says how FetchWithRetry retries.
type FetchConfig struct {
	// Backoff paces the retries.
	Backoff Backoff
	// Fatal, when set, picks the errors to give up on at once (see
	// Config.Fatal).
	Fatal func(error) bool
	// Logger receives each failure and the wait after it; default discards.
	Logger *slog.Logger
	// OnEvent, when set, is told of each fetch, failure and back-off.
	OnEvent func(Event)
}

// FetchWithRetry asks src until it answers, waiting with back-off (or the
// server's Retry-After) between tries; it gives up when ctx ends, or at once
// on an error cfg.Fatal reports true for (returned as it is, unlogged).
func FetchWithRetry(ctx context.Context, src Source, cfg FetchConfig) (Credentials, error) {
	log := orDiscard(cfg.Logger)
	retry := retries{b: cfg.Backoff}
	for {
		c, err := src.Fetch(ctx)
		if err == nil {
			emit(cfg.OnEvent, Event{Kind: EventFetched, ClientID: c.ClientID})
			return c, nil
		}
		emit(cfg.OnEvent, Event{Kind: EventFetchFailed, Err: err})
		if ctx.Err() != nil {
			return Credentials{}, fmt.Errorf("fetch credentials: %w (last error: %w)", context.Cause(ctx), err)
		}
		if cfg.Fatal != nil && cfg.Fatal(err) {
			return Credentials{}, err
		}
		d := retry.next(err)
		log.Warn("cannot fetch credentials", "error", err, "retry_in", d.Round(time.Millisecond).String())
		emit(cfg.OnEvent, Event{Kind: EventBackoff, Delay: d})
		if serr := sleep(ctx, d); serr != nil {
			return Credentials{}, fmt.Errorf("fetch credentials: %w (last error: %w)", serr, err)
		}
	}
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// ExecConfig configures Exec.
type ExecConfig struct {
	// Source hands out credentials; required.
	Source Source
	// Argv is the command and its arguments; required.
	Argv []string
	// Stdin, Stdout and Stderr are the child's; nil means the null device.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Backoff paces fetch retries, at start and at each refresh.
	Backoff Backoff
	// StopTimeout is how long the child has to exit after SIGTERM before it
	// is killed; default 10s.
	StopTimeout time.Duration
	// Logger receives progress (never a password); default discards.
	Logger *slog.Logger
	// OnEvent, when set, is told of each fetch, failure and back-off.
	OnEvent func(Event)
}

// Exec runs a command with the device's credentials in its environment
// (see Credentials.Env) and restarts it with fresh ones each time they are
// due for refresh. It returns the child's error when the child exits on its
// own (an *exec.ExitError carries its status), or ctx's cause after stopping
// the child when ctx ends.
func Exec(ctx context.Context, cfg ExecConfig) error {
	if cfg.Source == nil || len(cfg.Argv) == 0 {
		return errors.New("exec: need a credentials source and a command")
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	log := orDiscard(cfg.Logger)
	defer startRotation(ctx, cfg.Source, cfg.Backoff, log, cfg.OnEvent)()
	fc := FetchConfig{Backoff: cfg.Backoff, Logger: log, OnEvent: cfg.OnEvent}
	creds, err := FetchWithRetry(ctx, cfg.Source, fc)
	if err != nil {
		return err
	}
	for {
		cmd := exec.Command(cfg.Argv[0], cfg.Argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
		cmd.Env = os.Environ()
		for _, v := range creds.Env() {
			cmd.Env = append(cmd.Env, v.Name+"="+v.Value)
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("exec: start %s: %w", cfg.Argv[0], err)
		}
		log.Info("started child", "pid", cmd.Process.Pid, "creds", creds.String())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		timer := time.NewTimer(until(creds.RefreshAt()))
		retry := retries{b: cfg.Backoff}
		var fresh *Credentials
		for fresh == nil {
			select {
			case err := <-exited:
				timer.Stop()
				if err != nil {
					return fmt.Errorf("exec: %s: %w", cfg.Argv[0], err)
				}
				return nil
			case <-ctx.Done():
				timer.Stop()
				stopChild(cmd, exited, cfg.StopTimeout)
				return context.Cause(ctx)
			case <-timer.C:
				c, err := cfg.Source.Fetch(ctx)
				if err != nil {
					d := retry.next(err)
					log.Warn("cannot refresh credentials; child keeps the old ones", "error", err, "retry_in", d.Round(time.Millisecond).String())
					emit(cfg.OnEvent, Event{Kind: EventFetchFailed, Err: err})
					emit(cfg.OnEvent, Event{Kind: EventBackoff, Delay: d})
					timer.Reset(d)
					continue
				}
				emit(cfg.OnEvent, Event{Kind: EventFetched, ClientID: c.ClientID})
				fresh = &c
			}
		}
		log.Info("restarting child with fresh credentials", "pid", cmd.Process.Pid)
		stopChild(cmd, exited, cfg.StopTimeout)
		creds = *fresh
	}
}

// stopChild sends SIGTERM, then SIGKILL after grace, and waits.
func stopChild(cmd *exec.Cmd, exited <-chan error, grace time.Duration) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		_ = cmd.Process.Kill()
		<-exited
	}
}
