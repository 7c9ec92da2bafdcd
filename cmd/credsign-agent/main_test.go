package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/e2e"
	"github.com/credsign/credsign/internal/testing/testutil"
)

const (
	azureKey = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	// otherKey is a well-formed Azure key that is not lamp's.
	otherKey = "d3Jvbmcta2V5LW9mLXRoZS1yaWdodC1zaGFwZQ=="
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParsePrecedence(t *testing.T) {
	conf := testutil.WriteFile(t, "agent.env", []byte("# device agent\nCREDSIGN_SERVER='https://file.example'\nCREDSIGN_DEVICE=from-file\nexport CREDSIGN_TTL=2h\n"))
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		server string
		device string
		ttl    string
	}{
		{"file only", []string{"--config", conf}, nil, "https://file.example", "from-file", "2h"},
		{"env beats file", []string{"--config", conf}, map[string]string{"CREDSIGN_DEVICE": "from-env"}, "https://file.example", "from-env", "2h"},
		{"flag beats env", []string{"--config", conf, "--device", "from-flag"}, map[string]string{"CREDSIGN_DEVICE": "from-env"}, "https://file.example", "from-flag", "2h"},
		{"config from env", nil, map[string]string{"CREDSIGN_CONFIG": conf, "CREDSIGN_SERVER": "https://env.example"}, "https://env.example", "from-file", "2h"},
		{"no file", []string{"--server", "https://flag.example"}, nil, "https://flag.example", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse("creds", tt.args, env(tt.env), nil, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.values["server"] != tt.server || c.values["device"] != tt.device || c.values["ttl"] != tt.ttl {
				t.Fatalf("got server %q device %q ttl %q", c.values["server"], c.values["device"], c.values["ttl"])
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	bad := testutil.WriteFile(t, "bad.env", []byte("CREDSIGN_SERVR=https://x\n"))
	tests := []struct {
		name, cmd string
		args      []string
		want      string
	}{
		{"unknown config variable", "creds", []string{"--config", bad}, "unknown variable CREDSIGN_SERVR"},
		{"missing config", "creds", []string{"--config", filepath.Join(t.TempDir(), "none")}, "no such file"},
		{"exec without command", "exec", nil, "exec needs a command"},
		{"stray argument", "pub", []string{"x"}, "unexpected arguments"},
		{"bad qos", "sub", []string{"-q", "3"}, "want 0, 1 or 2"},
		{"socket without topic", "run", []string{"--pub-socket", "/tmp/x.sock"}, "needs --pub-topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.cmd, tt.args, env(nil), nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzConfigVars(f *testing.F) {
	f.Add("CREDSIGN_SERVER=https://x\nCREDSIGN_DEVICE='a b'\n")
	f.Add("export CREDSIGN_TTL=\"1h\"\n# c\n")
	f.Fuzz(func(t *testing.T, s string) {
		vars, err := configVars(strings.NewReader(s), "fuzz")
		if err != nil {
			return
		}
		for _, v := range vars {
			known := false
			for _, st := range settings {
				known = known || st.flag == v.Name
			}
			if !known {
				t.Fatalf("config produced unknown setting %q", v.Name)
			}
		}
	})
}

// fixture is a real credsign (the API with its embedded store, in-process
// on loopback) where device lamp is an Azure device whose hub is a TLS
// emulator.
type fixture struct {
	svc       *e2e.Service
	emu       *cloudemu.Emulator
	server    string
	tokenFile string
	caFile    string
	device    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	svc := e2e.NewService(t, nil)
	svc.Start()
	e, err := cloudemu.Start(cloudemu.Options{Cloud: cloudemu.Azure, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.AddDevice(map[string]string{"hubHost": "hub.azure-devices.net", "deviceId": "lamp"}, azureKey); err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc, emu: e, server: svc.URL(), caFile: filepath.Join(t.TempDir(), "ca.pem"), device: "lamp"}
	f.tokenFile = f.register("lamp", azureKey, e.Host(), e.Port())
	if err := os.WriteFile(f.caFile, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// register registers Azure device id with key, its hub at host:port, and
// returns its token file.
func (f *fixture) register(id, key, host string, port int) string {
	return f.svc.Register(id, "azure", map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "lamp", "host": host, "port": port}, key)
}

func (f *fixture) env() func(string) string {
	return env(map[string]string{"CREDSIGN_SERVER": f.server, "CREDSIGN_DEVICE": f.device, "CREDSIGN_TOKEN_FILE": f.tokenFile})
}

// result is the outcome of one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

func (f *fixture) run(ctx context.Context, stdin io.Reader, args ...string) result {
	return runWith(ctx, stdin, f.env(), args...)
}

// runWith runs the command with the environment getenv.
func runWith(ctx context.Context, stdin io.Reader, getenv func(string) string, args ...string) result {
	// Synchronized: a child of exec writes to them while the agent logs.
	out, errb := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	code := run(ctx, args, stdin, out, errb, getenv)
	return result{code, out.String(), errb.String()}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCreds(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	r := f.run(ctx, nil, "creds", "--format", "env")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	vars, err := agent.ParseEnv(strings.NewReader(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range vars {
		got[v.Name] = v.Value
	}
	if got["CREDSIGN_MQTT_CLIENT_ID"] != "lamp" || got["CREDSIGN_MQTT_TLS"] != "true" || !strings.HasPrefix(got["CREDSIGN_MQTT_PASSWORD"], "SharedAccessSignature ") {
		t.Fatalf("env output %v", got)
	}
	r = f.run(ctx, nil, "creds")
	var c agent.Credentials
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.Cloud != "azure" || c.ExpiresAt == nil {
		t.Fatalf("json output %q: %v", r.stdout, err)
	}
	if r := f.run(ctx, nil, "creds", "--format", "yaml"); r.code != 2 || !strings.Contains(r.stderr, "want json or env") {
		t.Fatalf("yaml: exit %d, %q", r.code, r.stderr)
	}
}

func TestPubAndRun(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	r := f.run(ctx, nil, "pub", "--broker-ca-file", f.caFile, "-t", "devices/lamp/messages/events/", "-m", "one")
	if r.code != 0 {
		t.Fatalf("pub: exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "SharedAccessSignature") {
		t.Fatal("pub logged the password")
	}
	// run: stdin lines are published; cloud-to-device messages are printed.
	stdinR, stdinW := io.Pipe()
	sock := filepath.Join(t.TempDir(), "pub.sock")
	runCtx, stop := context.WithCancel(ctx)
	out := &testutil.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(runCtx, []string{"run", "--broker-ca-file", f.caFile, "--pub-topic", "devices/lamp/messages/events/",
			"--sub", "devices/lamp/messages/devicebound/#", "--pub-socket", sock}, stdinR, out, io.Discard, f.env())
	}()
	if _, err := io.WriteString(stdinW, "two\nthree\n"); err != nil {
		t.Fatal(err)
	}
	conn := dialSocket(ctx, t, sock)
	if _, err := io.WriteString(conn, "four\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	if _, err := f.emu.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) == 4 }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two", "three", "four"} {
		found := false
		for _, m := range f.emu.Snapshot().Messages {
			found = found || string(m.Payload) == want
		}
		if !found {
			t.Fatalf("message %q did not reach the broker", want)
		}
	}
	// The subscription is made before stdin is read, so it is in place.
	if err := f.emu.Publish("devices/lamp/messages/devicebound/x", []byte("cmd"), 1); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), "devices/lamp/messages/devicebound/x cmd\n") {
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("run printed %q", out.String())
		}
	}
	stop()
	_ = stdinW.Close()
	if code := <-done; code != 0 {
		t.Fatalf("run exit %d after stop", code)
	}
}

func TestSub(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	done := make(chan result, 1)
	go func() {
		done <- f.run(ctx, nil, "sub", "--broker-ca-file", f.caFile, "-t", "devices/lamp/messages/devicebound/#", "-C", "2", "-v")
	}()
	// Publish until the subscriber has had two messages and exited.
	for i := 0; ; i++ {
		select {
		case r := <-done:
			if r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.HasPrefix(r.stdout, "devices/lamp/messages/devicebound/c ") {
				t.Fatalf("sub: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			return
		case <-time.After(50 * time.Millisecond):
			if err := f.emu.Publish("devices/lamp/messages/devicebound/c", []byte(fmt.Sprint(i)), 1); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("sub did not exit after 2 messages")
		}
	}
}

func TestExecPassesCredentialsAndStatus(t *testing.T) {
	f := newFixture(t)
	r := f.run(testCtx(t), nil, "exec", "--", "sh", "-c", `echo "$CREDSIGN_MQTT_CLIENT_ID@$CREDSIGN_MQTT_HOST"; exit 4`)
	if r.code != 4 || !strings.HasPrefix(r.stdout, "lamp@127.0.0.1\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// dialSocket connects to the unix socket sock of `run --pub-socket`, which
// appears once run has started; it fails t if ctx ends first.
func dialSocket(ctx context.Context, t *testing.T, sock string) net.Conn {
	t.Helper()
	for {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			return conn
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("dial %s: %v", sock, err)
		}
	}
}
