package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/signing"

	"github.com/credsign/credsign/internal/testutil"
)

const (
	azureKey    = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	deviceToken = "csd_0123456789abcdef0123456789abcdef0123456789abcdef"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParsePrecedence(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.env")
	if err := os.WriteFile(conf, []byte("# device agent\nCREDSIGN_SERVER='https://file.example'\nCREDSIGN_DEVICE=from-file\nexport CREDSIGN_TTL=2h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
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
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(bad, []byte("CREDSIGN_SERVR=https://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cmd string
		args      []string
		want      string
	}{
		{"unknown config variable", "creds", []string{"--config", bad}, "unknown variable CREDSIGN_SERVR"},
		{"missing config", "creds", []string{"--config", filepath.Join(dir, "none")}, "no such file"},
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

// fixture is a fake credsign (signing locally, tests only) for an Azure
// device whose hub is a TLS emulator.
type fixture struct {
	emu       *cloudemu.Emulator
	server    string
	tokenFile string
	caFile    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e, err := cloudemu.Start(cloudemu.Options{Cloud: cloudemu.Azure, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.AddDevice(map[string]string{"hubHost": "hub.azure-devices.net", "deviceId": "lamp"}, azureKey); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/devices/lamp/credentials" || r.Header.Get("Authorization") != "Bearer "+deviceToken {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Unauthorized","status":401}`))
			return
		}
		c, err := signing.Sign(signing.Request{Cloud: "azure", DeviceID: "lamp", Secret: azureKey, Now: time.Now(),
			Params: map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "lamp", "host": e.Host(), "port": e.Port()}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	f := &fixture{emu: e, server: srv.URL, tokenFile: filepath.Join(dir, "token"), caFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(f.tokenFile, []byte(deviceToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.caFile, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) env() func(string) string {
	return env(map[string]string{"CREDSIGN_SERVER": f.server, "CREDSIGN_DEVICE": "lamp", "CREDSIGN_TOKEN_FILE": f.tokenFile})
}

// result is the outcome of one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

func (f *fixture) run(ctx context.Context, stdin io.Reader, args ...string) result {
	// Synchronized: a child of exec writes to them while the agent logs.
	out, errb := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	code := run(ctx, args, stdin, out, errb, f.env())
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
	if r := f.run(ctx, nil, "creds", "--format", "yaml"); r.code != 1 || !strings.Contains(r.stderr, "want json or env") {
		t.Fatalf("yaml: exit %d, %q", r.code, r.stderr)
	}
}

func TestCredsWrongTokenIsNotPrinted(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(f.tokenFile, []byte("csd_wrong_token_value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
	defer cancel()
	r := f.run(ctx, nil, "creds", "--log-level", "warn")
	if !strings.Contains(r.stderr, "credsign answered 401") {
		t.Fatalf("stderr %q: want the 401 reported", r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, "csd_wrong_token_value") {
		t.Fatal("the token was printed")
	}
}

// A one-shot command (creds, pub, sub) given a token credsign refuses ends
// at once with one line and status 1, instead of retrying until killed;
// run keeps retrying (its token file may be rotated in place).
func TestOneShotCommandsStopOnRefusedToken(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(f.tokenFile, []byte("csd_wrong_token_value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"creds"},
		{"pub", "--broker-ca-file", f.caFile, "-t", "devices/lamp/messages/events/", "-m", "x"},
		{"sub", "--broker-ca-file", f.caFile, "-t", "devices/lamp/messages/devicebound/#"},
	} {
		t.Run(args[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(testCtx(t), 20*time.Second)
			defer cancel()
			start := time.Now()
			r := f.run(ctx, nil, args...)
			if ctx.Err() != nil {
				t.Fatalf("%s still retrying after %v: %q", args[0], time.Since(start), r.stderr)
			}
			want := "credsign-agent " + args[0] + ": credsign answered 401 Unauthorized (check --device, and the token in --token-file)\n"
			if r.code != 1 || r.stderr != want {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
			}
			if strings.Contains(r.stdout+r.stderr, "csd_wrong_token_value") {
				t.Fatal("the token was printed")
			}
		})
	}
	t.Run("run retries", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testCtx(t), 1500*time.Millisecond)
		defer cancel()
		r := f.run(ctx, nil, "run", "--broker-ca-file", f.caFile)
		if r.code != 0 || strings.Count(r.stderr, "credsign answered 401") < 2 {
			t.Fatalf("run: exit %d, stderr %q; want retries until stopped", r.code, r.stderr)
		}
	})
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
	var conn net.Conn
	for conn == nil { // the socket appears once run has started
		var err error
		if conn, err = net.Dial("unix", sock); err != nil {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				t.Fatalf("dial %s: %v", sock, err)
			}
		}
	}
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

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), nil, nil, &out, &errb, env(nil)); code != 2 || !strings.Contains(errb.String(), "usage:") {
		t.Fatalf("no args: exit %d", code)
	}
	if code := run(context.Background(), []string{"frob"}, nil, &out, &errb, env(nil)); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code := run(context.Background(), []string{"creds"}, nil, &out, &errb, env(nil)); code != 1 || !strings.Contains(errb.String(), "CREDSIGN_SERVER") {
		t.Fatalf("no server: exit %d, %q", code, errb.String())
	}
}
