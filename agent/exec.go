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

// FetchWithRetry asks src until it answers, waiting with back-off (or the
// server's Retry-After) between tries; it gives up only when ctx ends.
func FetchWithRetry(ctx context.Context, src Source, b Backoff, log *slog.Logger) (Credentials, error) {
	for n := 0; ; n++ {
		c, err := src.Fetch(ctx)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return Credentials{}, fmt.Errorf("fetch credentials: %w (last error: %w)", context.Cause(ctx), err)
		}
		d := b.Delay(n)
		var fe *FetchError
		if errors.As(err, &fe) && fe.RetryAfter > d {
			d = fe.RetryAfter
		}
		if log != nil {
			log.Warn("cannot fetch credentials", "err", err, "retry_in", d.Round(time.Millisecond))
		}
		if serr := sleep(ctx, d); serr != nil {
			return Credentials{}, fmt.Errorf("fetch credentials: %w (last error: %w)", serr, err)
		}
	}
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
	// Backoff paces fetch retries.
	Backoff Backoff
	// StopTimeout is how long the child has to exit after SIGTERM before it
	// is killed; default 10s.
	StopTimeout time.Duration
	// Logger receives progress (never a password); default discards.
	Logger *slog.Logger
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
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	creds, err := FetchWithRetry(ctx, cfg.Source, cfg.Backoff, log)
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
					d := cfg.Backoff.Delay(0)
					var fe *FetchError
					if errors.As(err, &fe) && fe.RetryAfter > d {
						d = fe.RetryAfter
					}
					log.Warn("cannot refresh credentials; child keeps the old ones", "err", err, "retry_in", d.Round(time.Millisecond))
					timer.Reset(d)
					continue
				}
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
