package clients_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/emutest"
	"github.com/credsign/credsign/internal/testing/testutil"
)

// requireClients makes a missing runtime (python3 with paho-mqtt, a C
// compiler with libcurl and Paho MQTT C, MicroPython's unix port in
// ../shared/tools/micropython) a failure instead of a skip; CI sets it.
var requireClients = os.Getenv("CREDSIGN_REQUIRE_CLIENTS") == "1"

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if requireClients {
		t.Fatalf("%s (CREDSIGN_REQUIRE_CLIENTS=1)", msg)
	}
	t.Skipf("%s; apt-get install python3-paho-mqtt python3-cryptography libpaho-mqtt-dev libcurl4-openssl-dev libssl-dev build-essential libffi8, "+
		"and put shared/tools/micropython beside the repository (CI does) or set CREDSIGN_MICROPYTHON_DIR", msg)
}

// runtime starts one of the clients with the given settings.
type runtime struct {
	name    string
	command func(t *testing.T, s settings) *exec.Cmd
}

// The MicroPython client runs on MicroPython's unix port twice: the
// standard build with micropython-lib's current umqtt.simple (1.8.0), and
// the build with 32-bit floats (as on ESP32, ESP8266, RP2 and most STM32
// boards) with umqtt.simple 1.4.0 (frozen into ESP32 firmware 1.23-1.24),
// which takes no ssl_params.
var runtimes = []runtime{
	{"python", pythonCommand},
	{"micropython", micropythonCommand("micropython", "")},
	{"micropython-float32-umqtt1.4", micropythonCommand("micropython-float32", "lib-umqtt-1.4.0")},
	{"c", cCommand},
}

// isMicroPython tells the MicroPython runtimes apart (tests of failures only
// a fake server can produce run on them).
func (rt runtime) isMicroPython() bool { return strings.HasPrefix(rt.name, "micropython") }

// python finds an interpreter that has paho-mqtt: Debian's python3-paho-mqtt
// installs for /usr/bin/python3, which may not be the first python3 on PATH.
var python = sync.OnceValue(func() string {
	cands := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		if exec.Command(p, "-c", "import paho.mqtt.client").Run() == nil {
			return p
		}
	}
	return ""
})

func env(s settings) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CREDSIGN_") {
			out = append(out, kv)
		}
	}
	out = append(out, "CREDSIGN_SERVER="+s.server, "CREDSIGN_DEVICE="+s.device, "CREDSIGN_TOKEN_FILE="+s.tokenFile,
		"CREDSIGN_CA_FILE="+s.caFile, "CREDSIGN_BROKER_CA_FILE="+s.brokerCAFile,
		"CREDSIGN_TTL="+strconv.Itoa(s.ttl), "CREDSIGN_INTERVAL="+strconv.FormatFloat(s.interval, 'f', -1, 64))
	if s.topic != "" {
		out = append(out, "CREDSIGN_TOPIC="+s.topic)
	}
	return out
}

func pythonCommand(t *testing.T, s settings) *exec.Cmd {
	t.Helper()
	py := python()
	if py == "" {
		missing(t, "no python3 with paho-mqtt")
	}
	c := exec.Command(py, "-u", filepath.Join("python", "credsign_client.py"))
	c.Env = env(s)
	return c
}

// micropythonDir is where the MicroPython interpreters and micropython-lib
// modules are (shared/tools/micropython/README.md): $CREDSIGN_MICROPYTHON_DIR,
// or shared/tools/micropython beside the repository, as in CI.
func micropythonDir() string {
	if d := os.Getenv("CREDSIGN_MICROPYTHON_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "shared", "tools", "micropython")
}

// micropythonCommand runs clients/micropython/credsign_client.py on the
// unix port's binary bin, with micropython-lib's modules and, when lib is
// set, that folder's before them (another umqtt.simple release).
func micropythonCommand(bin, lib string) func(t *testing.T, s settings) *exec.Cmd {
	return func(t *testing.T, s settings) *exec.Cmd {
		t.Helper()
		dir, err := filepath.Abs(micropythonDir())
		if err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(dir, bin)
		if _, err := os.Stat(exe); err != nil {
			missing(t, "no MicroPython interpreter at %s", exe)
		}
		if out, err := exec.Command(exe, "-c", "print(1)").CombinedOutput(); err != nil {
			missing(t, "%s does not run (it needs libffi8): %v %s", exe, err, out)
		}
		path := filepath.Join(dir, "lib")
		if lib != "" {
			path = filepath.Join(dir, lib) + ":" + path
		}
		cfg := map[string]any{"server": s.server, "device": s.device, "token_file": s.tokenFile, "ca_file": s.caFile,
			"broker_ca_file": s.brokerCAFile, "ttl": s.ttl, "interval": s.interval, "timeout": s.timeout}
		if s.topic != "" {
			cfg["topic"] = s.topic
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		args := append(s.mpArgs, filepath.Join("micropython", "credsign_client.py"), testutil.WriteFile(t, "credsign.json", b))
		c := exec.Command(exe, args...)
		c.Env = append(env(s), "MICROPYPATH="+path)
		return c
	}
}

var (
	cBuildDir string
	cBuild    = sync.OnceValues(buildC)
)

// buildC compiles clients/c, reporting missing prerequisites apart from a
// client that does not compile.
func buildC() (built, error) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		return built{missing: "no C compiler (cc)"}, nil
	}
	probe := filepath.Join(cBuildDir, "probe.c")
	if err := os.WriteFile(probe, []byte("#include <curl/curl.h>\n#include <MQTTClient.h>\n#include <openssl/evp.h>\nint main(void) { return 0; }\n"), 0o600); err != nil {
		return built{}, err
	}
	if out, err := exec.Command(cc, "-o", filepath.Join(cBuildDir, "probe"), probe, "-lcurl", "-lpaho-mqtt3cs", "-lcrypto").CombinedOutput(); err != nil {
		return built{missing: fmt.Sprintf("no libcurl, Paho MQTT C or OpenSSL development files (%s)", strings.TrimSpace(string(out)))}, nil
	}
	bin := filepath.Join(cBuildDir, "credsign-client")
	// The cc line of clients/c/Makefile, with warnings as errors.
	out, err := exec.Command(cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", bin, filepath.Join("c", "credsign_client.c"),
		"-lcurl", "-lpaho-mqtt3cs", "-lcrypto").CombinedOutput()
	if err != nil {
		return built{}, fmt.Errorf("build clients/c: %w\n%s", err, out)
	}
	return built{bin: bin}, nil
}

// built is the C client's binary, or what is missing to build it.
type built struct{ bin, missing string }

func cCommand(t *testing.T, s settings) *exec.Cmd {
	t.Helper()
	b, err := cBuild()
	if err != nil {
		t.Fatal(err)
	}
	if b.missing != "" {
		missing(t, "%s", b.missing)
	}
	c := exec.Command(b.bin)
	c.Env = env(s)
	return c
}

func TestMain(m *testing.M) {
	// The subtests mostly wait on timers in other processes (refresh and
	// expiry take seconds by design), so run them all at once unless -parallel
	// was given; the default, GOMAXPROCS, would run two at a time on CI.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "32")
	}
	dir, err := os.MkdirTemp("", "credsign-clients-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cBuildDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func x509Pool(pem []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// clock is real time plus an offset; credsign and the emulator share it,
// the clients keep the real one.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time              { return time.Now().Add(c.Offset()) }
func (c *clock) Offset() time.Duration       { return time.Duration(c.off.Load()) }
func (c *clock) setOffset(off time.Duration) { c.off.Store(int64(off)) }

// endHourIn moves the clock so that its current hour ends d from now.
// Huawei's triples lapse when the hour of their timestamp ends, so this
// brings its enforced expiry into the test; for the other clouds the offset
// shows that the clients time everything from issuedAt, not from their own
// (here wrong) wall clock.
func (c *clock) endHourIn(d time.Duration) {
	t := time.Now()
	c.setOffset(t.Truncate(time.Hour).Add(time.Hour).Add(-d).Sub(t))
}

func count(e *cloudemu.Emulator) (accepted int, refused []error, messages int) {
	s := e.Snapshot()
	for _, a := range s.Attempts {
		if a.Err == nil {
			accepted++
		} else {
			refused = append(refused, a.Err)
		}
	}
	return accepted, refused, len(s.Messages)
}

func issued(s *server) []cloud.Credentials {
	var out []cloud.Credentials
	for _, ex := range s.exchanges() {
		if ex.status == http.StatusOK {
			out = append(out, ex.creds)
		}
	}
	return out
}

// TestClientsThroughRefreshAndExpiry runs each client for each cloud with
// 9-second credentials: it must connect, publish, refresh at refreshAfter,
// reconnect with the fresh triple before an enforced expiry (Azure drops a
// session whose SAS token lapses; Tencent and Huawei refuse a stale triple
// at CONNECT, which a broker restart forces), and keep the connection when
// the expiry is not enforced (Alibaba).
func TestClientsThroughRefreshAndExpiry(t *testing.T) {
	for _, rt := range runtimes {
		for _, d := range devices {
			t.Run(rt.name+"/"+d.Cloud, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t, 90*time.Second)
				clk := &clock{}
				// The hour ends 8s after the first fetch, however long the
				// client takes to start.
				srv := startServer(t, serverOptions{now: clk.Now, firstIssue: func() { clk.endHourIn(8 * time.Second) }})
				r := srv.register(t, d, clk.Now)
				p := startFor(t, rt.command(t, settingsFor(srv, r, 9)), srv, r)
				e := r.emu
				messages := func() int { _, _, n := count(e); return n }
				accepted := func() int { n, _, _ := count(e); return n }

				testutil.WaitFor(ctx, t, "a first message", func() bool { return messages() > 0 })
				first := issued(srv)[0]
				start := time.Now()
				commanded(ctx, t, p, e, first.Topics.Commands)
				if d.Cloud == cloudemu.Aliyun {
					if first.ExpiresAt != nil || first.ExpiryEnforced {
						t.Fatalf("aliyun triple expires at %v (enforced %t); this test wants one that does not", first.ExpiresAt, first.ExpiryEnforced)
					}
					testutil.WaitFor(ctx, t, "a refresh", func() bool { return len(issued(srv)) >= 2 })
					n := messages()
					testutil.WaitFor(ctx, t, "messages after the refresh", func() bool { return messages() >= n+2 })
					if a := accepted(); a != 1 {
						t.Errorf("%d accepted CONNECTs; a refresh of a triple whose expiry is not enforced should keep the connection", a)
					}
				} else {
					if first.ExpiresAt == nil || !first.ExpiryEnforced {
						t.Fatalf("%s triple: want an enforced expiry, got %+v", d.Cloud, first.ExpiresAt)
					}
					lapse := first.ExpiresAt.Add(-clk.Offset()) // on the real clock
					testutil.WaitFor(ctx, t, "the first triple's expiry", func() bool { return time.Now().After(lapse.Add(500 * time.Millisecond)) })
					n := messages()
					testutil.WaitFor(ctx, t, "messages after the first triple lapsed", func() bool { return messages() >= n+2 })
					if a := accepted(); a < 2 {
						t.Errorf("%d accepted CONNECTs; want a reconnect with fresh credentials before the enforced expiry", a)
					}
					if d.Cloud == cloudemu.Azure {
						if x := e.Snapshot().Expired; x != 0 {
							t.Errorf("the hub dropped %d sessions whose token lapsed; the client should reconnect first", x)
						}
					} else {
						// A reconnect now must use a triple that has not lapsed.
						a := accepted()
						if err := e.Restart(); err != nil {
							t.Fatal(err)
						}
						testutil.WaitFor(ctx, t, "a reconnect after the broker restart", func() bool { return accepted() > a })
						n := messages()
						testutil.WaitFor(ctx, t, "messages after the broker restart", func() bool { return messages() >= n+2 })
					}
					if d.Cloud == cloudemu.Huawei {
						ids := map[string]bool{}
						for _, at := range e.Snapshot().Attempts {
							if at.Err == nil {
								ids[at.ClientID] = true
							}
						}
						if len(ids) < 2 {
							t.Errorf("accepted ClientIds %v: want the next hour's after the hour rolled", ids)
						}
					}
				}
				onTelemetry(t, e, first.Topics.Telemetry)
				// One fetch per refreshAfter (6 s here) and one per refused
				// CONNECT at most: a client that thinks a triple expired on
				// arrival (time kept in 32-bit floats rounds to 128 s)
				// fetches again at once.
				if n, most := len(srv.exchanges()), 3+int(time.Since(start)/(5*time.Second)); n > most {
					t.Errorf("%d credentials requests in %v; want at most %d", n, time.Since(start).Round(time.Second), most)
				}
				_, refused, _ := count(e)
				for _, err := range refused {
					// Credsign hands out Huawei triples up to the end of
					// their hour, however near; one can lapse between the
					// fetch and the CONNECT. Any other refusal is a bug.
					if d.Cloud != cloudemu.Huawei || !errors.Is(err, cloudemu.ErrExpired) {
						t.Errorf("broker refused a CONNECT: %v", err)
					}
				}
				healthy(t, p, srv, r)
			})
		}
	}
}

// TestClientsHonourRetryAfter: the first credentials request is answered
// 503 with Retry-After: 2 (a FAKE outage, from the test's recorder in front
// of the real API), the second reaches the real API, whose rate limit (6 a
// minute, burst 1, spent by the test just before) answers 429 with its own
// Retry-After. Each retry must wait at least that long.
func TestClientsHonourRetryAfter(t *testing.T) {
	eachRuntime(t, func(ctx context.Context, t *testing.T, rt runtime) {
		srv := startServer(t, serverOptions{ratePerMi: 6})
		r := srv.register(t, devices[3], nil)
		cmd := rt.command(t, settingsFor(srv, r, 0))
		// Spend the device token's burst.
		req, err := http.NewRequest(http.MethodPost, srv.url+"/v1/devices/"+r.id+"/credentials", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := srv.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("spending the burst: %s", resp.Status)
		}
		srv.unavailable.Store(1)
		p := startFor(t, cmd, srv, r)
		testutil.WaitFor(ctx, t, "a connection", func() bool { a, _, _ := count(r.emu); return a > 0 })
		ex := srv.exchanges()[1:] // after the test's own request
		if len(ex) != 3 || ex[0].status != 503 || ex[1].status != 429 || ex[2].status != 200 {
			var got []int
			for _, x := range ex {
				got = append(got, x.status)
			}
			t.Fatalf("credentials answers %v, want [503 429 200]", got)
		}
		for i := range 2 {
			ra, err := strconv.Atoi(ex[i].retryAfter)
			if err != nil || ra < 1 {
				t.Fatalf("answer %d has Retry-After %q", ex[i].status, ex[i].retryAfter)
			}
			// Allow 100ms for the recorder's timestamps.
			if gap := ex[i+1].at.Sub(ex[i].at); gap < time.Duration(ra)*time.Second-100*time.Millisecond {
				t.Errorf("retried %v after a %d with Retry-After: %d", gap.Round(time.Millisecond), ex[i].status, ra)
			}
		}
		healthy(t, p, srv, r)
	})
}

// TestClientsStopOnRevokedToken: once the device token is revoked, the next
// refresh gets 401, which retrying cannot fix: the client must stop with
// status 3 after that one request.
func TestClientsStopOnRevokedToken(t *testing.T) {
	eachRuntime(t, func(ctx context.Context, t *testing.T, rt runtime) {
		srv := startServer(t, serverOptions{})
		r := srv.register(t, devices[0], nil)
		p := startFor(t, rt.command(t, settingsFor(srv, r, 3)), srv, r)
		testutil.WaitFor(ctx, t, "a message", func() bool { _, _, n := count(r.emu); return n > 0 })
		srv.call(http.MethodDelete, "/v1/devices/"+r.id+"/tokens/"+r.tokenID, nil, nil)
		if p.exitStatus(ctx, t, "the client kept running after its token was revoked") != 3 {
			t.Errorf("client ended with %v, want exit status 3", p.err)
		}
		ex := srv.exchanges()
		unauthorized := 0
		for _, x := range ex {
			if x.status == http.StatusUnauthorized {
				unauthorized++
			}
		}
		if unauthorized != 1 || ex[len(ex)-1].status != http.StatusUnauthorized {
			t.Errorf("%d answers of 401 (last %d); want one, then nothing", unauthorized, ex[len(ex)-1].status)
		}
		if !strings.Contains(p.out.String(), "401") {
			t.Errorf("the client did not say why it stopped:\n%s", p.out.String())
		}
		noSecrets(t, p, secretsOf(srv, r)...)
	})
}

// TestCReader runs clients/c/reader_test.c: the C client's hand-written JSON
// reader and RFC 3339 parser on escapes, nesting, truncation and bad input,
// under AddressSanitizer and UBSan.
func TestCReader(t *testing.T) {
	b, err := cBuild()
	if err != nil {
		t.Fatal(err)
	}
	if b.missing != "" {
		missing(t, "%s", b.missing)
	}
	bin := filepath.Join(t.TempDir(), "reader_test")
	if out, err := exec.Command("cc", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
		"-o", bin, filepath.Join("c", "reader_test.c"), "-lcurl", "-lpaho-mqtt3cs", "-lcrypto").CombinedOutput(); err != nil {
		t.Fatalf("build reader_test.c: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("reader_test: %v\n%s", err, out)
	}
}

// TestClientsBackOffWhenBrokerRefuses: credsign holds a wrong secret, so the
// broker refuses every triple. The client must not retry the same triple:
// it fetches a new one after each refusal (the device may have been fixed in
// credsign), and the waits between CONNECTs grow (0.5–1 s, 1–2 s, 2–4 s,
// 4–8 s) although each fetch succeeds.
func TestClientsBackOffWhenBrokerRefuses(t *testing.T) {
	eachRuntime(t, func(ctx context.Context, t *testing.T, rt runtime) {
		srv := startServer(t, serverOptions{})
		d := devices[0]
		d.wrongSecret = "not-the-secret"
		r := srv.register(t, d, nil)
		p := startFor(t, rt.command(t, settingsFor(srv, r, 0)), srv, r)
		var attempts []cloudemu.Attempt
		testutil.WaitFor(ctx, t, "five refused CONNECTs", func() bool { attempts = r.emu.Snapshot().Attempts; return len(attempts) >= 5 })
		refused := 0
		for i, at := range attempts {
			if at.Err == nil {
				t.Fatal("the broker accepted a triple signed with the wrong secret")
			}
			refused++
			if i == 0 {
				continue
			}
			// Waits of at least 0.5, 1, 2 and 4 s (the lower half of
			// each jittered delay); waits that do not grow stay near 1 s.
			if gap, least := at.At.Sub(attempts[i-1].At), 250*time.Millisecond<<i; gap < least-50*time.Millisecond {
				t.Errorf("CONNECT %d came %v after the previous refusal; want at least %v", i+1, gap.Round(time.Millisecond), least)
			}
		}
		if f := len(issued(srv)); f < refused {
			t.Errorf("%d fetches for %d refused CONNECTs; want a fresh triple before each CONNECT", f, refused)
		}
		if p.exited() {
			t.Fatalf("the client exited (%v); a refused CONNECT is not permanent", p.err)
		}
		noSecrets(t, p, secretsOf(srv, r)...)
	})
}

// TestClientsRefusePlainHTTPElsewhere: the device token goes over plain HTTP
// only to loopback; any other http:// server is a settings error (status 2)
// before anything is sent.
func TestClientsRefusePlainHTTPElsewhere(t *testing.T) {
	for _, rt := range runtimes {
		for name, server := range map[string]string{"remote": "http://credsign.example", "lookalike": "http://127.0.0.1.example:8080"} {
			t.Run(rt.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t, 30*time.Second)
				tok := testutil.WriteFile(t, "device.token", []byte("csd_not-a-real-token\n"))
				p := start(t, rt.command(t, settings{server: server, device: "lamp", tokenFile: tok, topic: "up", interval: 1}),
					func() []string { return nil })
				if p.exitStatus(ctx, t, "the client kept running") != 2 || !strings.Contains(p.out.String(), "https://") {
					t.Errorf("client ended with %v, output %q; want status 2 and a line asking for https://", p.err, p.out.String())
				}
			})
		}
	}
}

// commanded publishes to the device's commands topic (a filter: its
// wildcards filled in) until the client says it received a message there.
func commanded(ctx context.Context, t *testing.T, p *process, e *cloudemu.Emulator, commands string) {
	t.Helper()
	if commands == "" {
		t.Fatal("the credentials name no commands topic")
	}
	topic := strings.NewReplacer("#", "cmd", "+", "x").Replace(commands)
	testutil.WaitFor(ctx, t, "the client to receive a command on "+topic, func() bool {
		if err := e.Publish(topic, []byte("reboot"), 1); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(p.out.String(), "received a message on "+topic)
	})
}

// onTelemetry fails t unless every message e received went to topic.
func onTelemetry(t *testing.T, e *cloudemu.Emulator, topic string) {
	t.Helper()
	if topic == "" {
		t.Fatal("the credentials name no telemetry topic")
	}
	for _, m := range e.Snapshot().Messages {
		if m.Topic != topic {
			t.Errorf("a message on %q; want the credentials' telemetry topic %q", m.Topic, topic)
			return
		}
	}
}

// TestClientsFollowAMove: the device is moved from Alibaba (TLS, an expiry
// that is not enforced, so only the move calls for a reconnect) to Tencent
// (plain MQTT) in credsign; at its next refresh each client must leave the
// old broker and publish on the new one, to the new telemetry topic, and
// listen on the new commands topic.
func TestClientsFollowAMove(t *testing.T) {
	eachRuntime(t, func(ctx context.Context, t *testing.T, rt runtime) {
		srv := startServer(t, serverOptions{})
		from := srv.register(t, devices[0], nil)
		to := devices[1]
		toEmu, toParams := emutest.Start(t, to.Device, nil)
		s := settingsFor(srv, from, 6)
		p := startFor(t, rt.command(t, s), srv, from)
		testutil.WaitFor(ctx, t, "a message at the first cloud", func() bool { _, _, n := count(from.emu); return n > 0 })
		srv.call(http.MethodPut, "/v1/devices/"+from.id, map[string]any{"cloud": to.Cloud, "params": toParams, "secret": to.Secret}, nil)
		moved := time.Now()
		testutil.WaitFor(ctx, t, "messages at the second cloud", func() bool { _, _, n := count(toEmu); return n >= 2 })
		var creds cloud.Credentials
		for _, c := range issued(srv) {
			if c.Cloud == to.Cloud {
				creds = c
				break
			}
		}
		onTelemetry(t, toEmu, creds.Topics.Telemetry)
		commanded(ctx, t, p, toEmu, creds.Topics.Commands)
		// Nothing more at the old broker once the new one took over (the
		// refresh may have come up to 3 s after the PUT): not one of the
		// next three messages the client sends.
		n := len(from.emu.Snapshot().Messages)
		_, _, sent := count(toEmu)
		testutil.WaitFor(ctx, t, "three more messages at the second cloud", func() bool { _, _, m := count(toEmu); return m >= sent+3 })
		if m := len(from.emu.Snapshot().Messages); m != n {
			t.Errorf("%d messages at the old cloud after the move", m-n)
		}
		if len(from.emu.Snapshot().Connected) != 0 {
			t.Errorf("still connected to the old cloud %v after the move", time.Since(moved).Round(time.Second))
		}
		healthy(t, p, srv, from)
	})
}
