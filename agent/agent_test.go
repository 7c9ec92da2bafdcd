package agent_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/agent/agenttest"
	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/clouds"
	"github.com/credsign/credsign/internal/cloudemu"
)

const (
	azureKey   = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	tencentPSK = "MTIzNDU2Nzg5MGFiY2RlZg=="
)

// device is one emulated device: the params credsign would hold for it
// (without host/port) and the params the emulator identifies it by.
type device struct {
	cloud  string
	params map[string]any
	secret string
	tls    bool
}

var devices = []device{
	{cloudemu.Aliyun, map[string]any{"productKey": "a1pk", "deviceName": "lamp", "secureMode": 3}, "s3cret-aliyun", false},
	{cloudemu.Tencent, map[string]any{"productId": "ABCDEFGHIJ", "deviceName": "lamp"}, tencentPSK, false},
	{cloudemu.Huawei, map[string]any{"deviceId": "prod_lamp"}, "s3cret-huawei", true},
	{cloudemu.Azure, map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "lamp"}, azureKey, true},
}

func strParams(p map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range p {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// emulate starts an emulator that knows d.
func emulate(t *testing.T, d device, now func() time.Time) *cloudemu.Emulator {
	t.Helper()
	e, err := cloudemu.Start(cloudemu.Options{Cloud: d.cloud, TLS: d.tls, Now: now, ExpiryCheckInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.AddDevice(strParams(d.params), d.secret); err != nil {
		t.Fatal(err)
	}
	return e
}

// signer is a Source that signs locally (tests only) for a device whose
// broker is e, counting its calls.
type signer struct {
	d      device
	e      *cloudemu.Emulator
	secret string
	ttl    time.Duration
	now    func() time.Time
	calls  atomic.Int32
}

func (s *signer) Fetch(context.Context) (agent.Credentials, error) {
	s.calls.Add(1)
	p := map[string]any{"host": s.e.Host(), "port": s.e.Port()}
	for k, v := range s.d.params {
		p[k] = v
	}
	if s.d.cloud == cloudemu.Huawei {
		p["tls"] = s.d.tls
	}
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	secret := s.d.secret
	if s.secret != "" {
		secret = s.secret
	}
	c, err := clouds.Registry().Sign(cloud.Request{Cloud: s.d.cloud, DeviceID: "dev-" + s.d.cloud, Params: p, Secret: secret, Now: now(), TTL: s.ttl})
	if err != nil {
		return agent.Credentials{}, err
	}
	// Through the wire, as HTTPSource gets them.
	b, err := json.Marshal(c)
	if err != nil {
		return agent.Credentials{}, err
	}
	var out agent.Credentials
	return out, json.Unmarshal(b, &out)
}

func roots(e *cloudemu.Emulator) *x509.CertPool {
	if !e.TLS() {
		return nil
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(e.CAPEM())
	return p
}

func TestAgentConnectsPublishesAndReceives(t *testing.T) {
	for _, d := range devices {
		t.Run(d.cloud, func(t *testing.T) {
			ctx := agenttest.Context(t, 60*time.Second)
			e := emulate(t, d, nil)
			got := make(chan agent.Message, 1)
			ev := agenttest.NewRecorder()
			a := agenttest.Run(t, agent.Config{
				Source: &signer{d: d, e: e}, BrokerRoots: roots(e), OnEvent: ev.Add,
				Subscriptions: []agent.Subscription{{Topic: "down/#", QoS: 1}},
				OnMessage:     func(m agent.Message) { got <- m },
			})
			if err := a.Publish(ctx, "up/"+d.cloud, []byte("hello"), 1); err != nil {
				t.Fatal(err)
			}
			if !a.Connected() {
				t.Fatal("Connected() = false after an acknowledged publish")
			}
			s, err := e.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) > 0 })
			if err != nil {
				t.Fatal(err)
			}
			if m := s.Messages[0]; m.Topic != "up/"+d.cloud || string(m.Payload) != "hello" || m.QoS != 1 {
				t.Fatalf("broker got %+v", m)
			}
			if err := e.Publish("down/cmd", []byte("on"), 1); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if m.Topic != "down/cmd" || string(m.Payload) != "on" {
					t.Fatalf("agent got %+v", m)
				}
			case <-ctx.Done():
				t.Fatal("no message reached the agent")
			}
		})
	}
}

func TestAgentReconnectsBeforeEnforcedExpiryWithoutLosingMessages(t *testing.T) {
	for _, d := range []device{devices[3]} { // Azure drops a client whose token lapses
		t.Run(d.cloud, func(t *testing.T) {
			ctx := agenttest.Context(t, 90*time.Second)
			e := emulate(t, d, nil)
			ev := agenttest.NewRecorder()
			a := agenttest.Run(t, agent.Config{Source: &signer{d: d, e: e, ttl: 6 * time.Second}, BrokerRoots: roots(e), OnEvent: ev.Add})
			var sent []string
			for i := 0; ev.Count(agent.EventRotate) < 2; i++ {
				msg := strconv.Itoa(i)
				if err := a.Publish(ctx, "up", []byte(msg), 1); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, msg)
				if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
					t.Fatalf("after %d messages, %d rotations: %v", len(sent), ev.Count(agent.EventRotate), err)
				}
			}
			s, err := e.WaitDelivered(ctx, sent)
			if err != nil {
				t.Fatalf("a QoS 1 message was lost: %v", err)
			}
			if s.Expired != 0 {
				t.Fatalf("the broker dropped %d expired sessions; the agent should have rotated first", s.Expired)
			}
			ev.Wait(ctx, t, agent.EventConnected, 3) // first connect and two rotations
		})
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// skewClock is real time plus an offset a test can move.
type skewClock struct{ off atomic.Int64 }

func (c *skewClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

func TestAgentComesBackAfterBrokerDropsExpiredSession(t *testing.T) {
	ctx := agenttest.Context(t, 60*time.Second)
	d := devices[3]
	clock := &skewClock{}
	e := emulate(t, d, clock.Now)
	ev := agenttest.NewRecorder()
	// credsign's clock and the hub's agree (both follow clock).
	agenttest.Run(t, agent.Config{Source: &signer{d: d, e: e, now: clock.Now}, BrokerRoots: roots(e), OnEvent: ev.Add,
		Backoff: agent.Backoff{Initial: 50 * time.Millisecond, Max: time.Second}})
	ev.Wait(ctx, t, agent.EventConnected, 1)
	clock.off.Add(int64(2 * time.Hour)) // past the token's se
	ev.Wait(ctx, t, agent.EventLost, 1)
	ev.Wait(ctx, t, agent.EventConnected, 2)
	if s := e.Snapshot(); s.Expired != 1 {
		t.Fatalf("expired sessions = %d, want 1", s.Expired)
	}
}

func TestAgentRejectedCredentialsBackOff(t *testing.T) {
	ctx := agenttest.Context(t, 60*time.Second)
	d := devices[2]
	e := emulate(t, d, nil)
	ev := agenttest.NewRecorder()
	agenttest.Run(t, agent.Config{Source: &signer{d: d, e: e, secret: "wrong"}, BrokerRoots: roots(e), OnEvent: ev.Add,
		Backoff: agent.Backoff{Initial: 200 * time.Millisecond, Max: time.Second}})
	ev.Wait(ctx, t, agent.EventConnectFailed, 1)
	f, _ := ev.First(agent.EventConnectFailed)
	if !errors.Is(f.Err, agent.ErrRejected) {
		t.Fatalf("connect error %v, want ErrRejected", f.Err)
	}
	agenttest.BacksOff(ctx, t, e)
}

// With Fatal set (as the one-shot commands do), a refused CONNECT ends Run
// with the refusal instead of a retry.
func TestAgentFatalRejectionEndsRun(t *testing.T) {
	ctx := agenttest.Context(t, 60*time.Second)
	for _, d := range []device{devices[2], devices[3]} {
		e := emulate(t, d, nil)
		ev := agenttest.NewRecorder()
		// A well-formed key (base64, as Azure's are) that is not the device's.
		wrong := "d3Jvbmcta2V5LW9mLXRoZS1yaWdodC1zaGFwZQ=="
		a, err := agent.New(agent.Config{Source: &signer{d: d, e: e, secret: wrong}, BrokerRoots: roots(e), OnEvent: ev.Add,
			Fatal: agent.Permanent})
		if err != nil {
			t.Fatal(err)
		}
		err = a.Run(ctx)
		if !errors.Is(err, agent.ErrRejected) || ctx.Err() != nil {
			t.Fatalf("%s: Run = %v, want the refusal at once", d.cloud, err)
		}
		if n := ev.Count(agent.EventBackoff); n != 0 {
			t.Fatalf("%s: %d back-offs before giving up", d.cloud, n)
		}
	}
}

func TestAgentRestartedBroker(t *testing.T) {
	ctx := agenttest.Context(t, 60*time.Second)
	d := devices[0]
	e := emulate(t, d, nil)
	ev := agenttest.NewRecorder()
	a := agenttest.Run(t, agent.Config{Source: &signer{d: d, e: e}, BrokerRoots: roots(e), OnEvent: ev.Add,
		Backoff: agent.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}})
	ev.Wait(ctx, t, agent.EventConnected, 1)
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	ev.Wait(ctx, t, agent.EventLost, 1)
	ev.Wait(ctx, t, agent.EventConnected, 2)
	if err := a.Publish(ctx, "up", []byte("after restart"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) == 1 }); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPSourceHonoursRetryAfter(t *testing.T) {
	ctx := agenttest.Context(t, 60*time.Second)
	d := devices[0]
	e := emulate(t, d, nil)
	sig := &signer{d: d, e: e}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/devices/dev-aliyun/credentials" || r.Header.Get("Authorization") != "Bearer csd_test" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"slow down"}`))
			return
		}
		c, _ := sig.Fetch(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = writeJSON(w, c)
	}))
	t.Cleanup(srv.Close)
	src, err := agent.NewHTTPSource(agent.HTTPSourceConfig{Server: srv.URL, DeviceID: "dev-aliyun", Token: "csd_test"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Fetch(ctx)
	var fe *agent.FetchError
	if !errors.As(err, &fe) || fe.Status != 429 || fe.RetryAfter != time.Second || fe.Detail != "slow down" {
		t.Fatalf("first fetch: %v, want 429 with Retry-After 1s", err)
	}
	calls.Store(0)
	ev := agenttest.NewRecorder()
	began := time.Now()
	// Back-off starts at 10ms, so only Retry-After can explain a 1s wait.
	agenttest.Run(t, agent.Config{Source: src, OnEvent: ev.Add, Backoff: agent.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	ev.Wait(ctx, t, agent.EventConnected, 1)
	if waited := time.Since(began); waited < time.Second {
		t.Fatalf("connected after %s, before Retry-After", waited)
	}
	if b, ok := ev.First(agent.EventBackoff); !ok || b.Delay != time.Second {
		t.Fatalf("back-off event %+v, want 1s", b)
	}
}
