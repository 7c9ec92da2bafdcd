package agent

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testutil"
)

// counter issues credentials numbered 1, 2, … due for refresh after d.
func counter(d time.Duration) (Source, *atomic.Int32) {
	var n atomic.Int32
	return SourceFunc(func(context.Context) (Credentials, error) {
		i := n.Add(1)
		now := time.Now()
		return Credentials{Cloud: "aliyun", ClientID: "c" + strconv.Itoa(int(i)), Username: "u", Password: "p" + strconv.Itoa(int(i)),
			Host: "127.0.0.1", Port: 1883, IssuedAt: now, RefreshAfter: now.Add(d)}, nil
	}), &n
}

func TestExecRestartsChildWithFreshCredentials(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	src, _ := counter(300 * time.Millisecond)
	out := &testutil.SyncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Exec(ctx, ExecConfig{Source: src, Stdout: out, Backoff: Backoff{Initial: 10 * time.Millisecond},
			Argv: []string{"sh", "-c", `echo "$CREDSIGN_MQTT_CLIENT_ID $CREDSIGN_MQTT_PASSWORD $CREDSIGN_MQTT_HOST:$CREDSIGN_MQTT_PORT"; exec sleep 60`}})
	}()
	for !strings.Contains(out.String(), "c3 p3 127.0.0.1:1883") {
		select {
		case err := <-done:
			t.Fatalf("Exec returned %v; output %q", err, out.String())
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("child not restarted twice; output %q", out.String())
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec = %v, want context.Canceled", err)
	}
	if !strings.HasPrefix(out.String(), "c1 p1 127.0.0.1:1883\nc2 p2 ") {
		t.Fatalf("output %q", out.String())
	}
}

func TestExecReturnsChildStatus(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	src, _ := counter(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := Exec(ctx, ExecConfig{Source: src, Argv: []string{"sh", "-c", "exit 3"}})
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Exec = %v, want exit status 3", err)
	}
}
