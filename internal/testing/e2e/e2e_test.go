package e2e

import (
	"context"
	"crypto/x509"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/agent/agenttest"
	"github.com/credsign/credsign/internal/cloudemu"
)

const (
	azureKey   = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	tencentPSK = "MTIzNDU2Nzg5MGFiY2RlZg=="
)

var devices = []Device{
	{ID: "lamp-aliyun", Cloud: cloudemu.Aliyun, Params: map[string]any{"productKey": "a1pk", "deviceName": "lamp"}, Secret: "s3cret-aliyun", TLS: true},
	{ID: "lamp-tencent", Cloud: cloudemu.Tencent, Params: map[string]any{"productId": "ABCDEFGHIJ", "deviceName": "lamp"}, Secret: tencentPSK},
	{ID: "lamp-huawei", Cloud: cloudemu.Huawei, Params: map[string]any{"deviceId": "prod_lamp"}, Secret: "s3cret-huawei", TLS: true},
	{ID: "lamp-azure", Cloud: cloudemu.Azure, Params: map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "lamp"}, Secret: azureKey, TLS: true},
}

// clock is real time plus an offset a test can move; the service and the
// emulator share it, as credsign and a cloud share real time.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// setup starts an emulator for d and returns it with an agent config for
// d registered in svc (agentConfig).
func setup(t *testing.T, svc *Service, d Device, secret string, now func() time.Time, ttl time.Duration) (*cloudemu.Emulator, agent.Config, *agenttest.Recorder) {
	t.Helper()
	e, params := Emulate(t, svc, d, now)
	cfg, ev := agentConfig(t, svc, e, d, params, secret, ttl)
	return e, cfg, ev
}

// agentConfig registers d in svc with params (those of emulator e) and
// secret (d.Secret when empty), and returns an agent config for the device
// that trusts e's CA and records its events in the returned Recorder.
func agentConfig(t *testing.T, svc *Service, e *cloudemu.Emulator, d Device, params map[string]any, secret string, ttl time.Duration) (agent.Config, *agenttest.Recorder) {
	t.Helper()
	if secret == "" {
		secret = d.Secret
	}
	tokenFile := svc.Register(d.ID, d.Cloud, params, secret)
	ev := agenttest.NewRecorder()
	cfg := agent.Config{Source: svc.Source(d.ID, tokenFile, ttl), OnEvent: ev.Add}
	if e.TLS() {
		cfg.BrokerRoots = x509.NewCertPool()
		cfg.BrokerRoots.AppendCertsFromPEM(e.CAPEM())
	}
	return cfg, ev
}

// wantRejection fails t unless err is the agent's clear report of a
// refused CONNECT: ErrRejected, naming the cloud, not showing secret.
func wantRejection(t *testing.T, err error, cloud, secret string) {
	t.Helper()
	if !errors.Is(err, agent.ErrRejected) || !strings.Contains(err.Error(), cloud) {
		t.Fatalf("connect error %q: want a clear rejection naming the cloud", err)
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Fatal("the error shows the secret")
	}
}

func TestDeviceConnectsAndPublishes(t *testing.T) {
	svc := StartService(t, nil)
	for _, d := range devices {
		t.Run(d.Cloud, func(t *testing.T) {
			ctx := agenttest.Context(t, 60*time.Second)
			e, cfg, _ := setup(t, svc, d, "", nil, 0)
			a := agenttest.Run(t, cfg)
			publish(ctx, t, a, "up/"+d.ID, "hello from "+d.ID)
			s, err := e.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) > 0 })
			if err != nil {
				t.Fatal(err)
			}
			if m := s.Messages[0]; m.QoS != 1 || string(m.Payload) != "hello from "+d.ID {
				t.Fatalf("broker got %+v", m)
			}
		})
	}
}

// allDelivered waits until every sent payload reached e (the broker
// acknowledges a QoS 1 PUBLISH a moment before the emulator records it).
func allDelivered(t *testing.T, e *cloudemu.Emulator, sent []string) {
	t.Helper()
	ctx := agenttest.Context(t, 30*time.Second)
	if _, err := e.WaitDelivered(ctx, sent); err != nil {
		t.Fatalf("a QoS 1 message was lost: %v", err)
	}
}

// receive returns the next value on ch, and fails t with what if ctx
// ends first.
func receive[T any](ctx context.Context, t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatal(what)
	}
	var zero T
	return zero
}

func TestShortTTLRotatesUnderRunningAgent(t *testing.T) {
	ctx := agenttest.Context(t, 120*time.Second)
	svc := StartService(t, nil)
	d := devices[3] // Azure drops a client whose token lapses
	e, cfg, ev := setup(t, svc, d, "", nil, 6*time.Second)
	a := agenttest.Run(t, cfg)
	var sent []string
	for i := 0; len(ev.All(agent.EventRotate)) < 2; i++ {
		sent = append(sent, strconv.Itoa(i))
		publish(ctx, t, a, "devices/lamp/messages/events/", sent[i])
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("%d rotations after %d messages", len(ev.All(agent.EventRotate)), len(sent))
		}
	}
	allDelivered(t, e, sent)
	if s := e.Snapshot(); s.Expired != 0 {
		t.Fatalf("broker dropped %d sessions whose token lapsed; the agent should rotate first", s.Expired)
	}
}

func TestExpiredCredentialsReconnectWithFreshOnes(t *testing.T) {
	more := newCloudDevices(t)
	for _, d := range []Device{devices[3], devices[1], devices[2], more[0], more[3], more[4]} {
		t.Run(d.Cloud, func(t *testing.T) {
			ctx := agenttest.Context(t, 60*time.Second)
			clk := &clock{}
			svc := StartService(t, clk.Now)
			e, cfg, ev := setup(t, svc, d, "", clk.Now, 0)
			cfg.Backoff = agent.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
			a := agenttest.Run(t, cfg)
			publish(ctx, t, a, "up", "before")
			// Two hours pass for credsign and the cloud: every triple issued
			// so far is stale. Azure and the token clouds drop the session
			// now; Tencent, Huawei and OneNET refuse the old triple at the
			// next CONNECT, so drop it.
			clk.Advance(2 * time.Hour)
			if !dropsAtExpiry(d.Cloud) {
				if err := e.Restart(); err != nil {
					t.Fatal(err)
				}
			}
			ev.Wait(ctx, t, agent.EventLost, 1)
			publish(ctx, t, a, "up", "after") // blocks until reconnected
			allDelivered(t, e, []string{"before", "after"})
			if dropsAtExpiry(d.Cloud) && e.Snapshot().Expired != 1 {
				t.Fatalf("expired sessions = %d, want 1", e.Snapshot().Expired)
			}
			ok := 0
			for _, at := range e.Snapshot().Attempts {
				if at.Err == nil {
					ok++
				}
			}
			if ok < 2 {
				t.Fatalf("%d accepted CONNECTs, want a second one with fresh credentials", ok)
			}
		})
	}
}

// dropsAtExpiry reports whether the cloud ends a live session when its
// credentials expire.
func dropsAtExpiry(cloud string) bool {
	return cloud == cloudemu.Azure || cloud == cloudemu.JWT || cloud == cloudemu.AWS
}

func TestWrongSecretIsReportedAndBacksOff(t *testing.T) {
	ctx := agenttest.Context(t, 60*time.Second)
	svc := StartService(t, nil)
	d := devices[0]
	e, cfg, ev := setup(t, svc, d, "not-the-secret", nil, 0)
	cfg.Backoff = agent.Backoff{Initial: 200 * time.Millisecond, Max: time.Second}
	agenttest.Run(t, cfg)
	ev.Wait(ctx, t, agent.EventConnectFailed, 1)
	err := ev.All(agent.EventConnectFailed)[0].Err
	wantRejection(t, err, d.Cloud, "not-the-secret")
	if !strings.Contains(err.Error(), "refused CONNECT") {
		t.Fatalf("connect error %q: want a clear rejection naming the cloud", err)
	}
	agenttest.BacksOff(ctx, t, e)
}

func TestServiceDownAtBoot(t *testing.T) {
	ctx := agenttest.Context(t, 60*time.Second)
	svc := StartService(t, nil)
	d := devices[2]
	e, cfg, ev := setup(t, svc, d, "", nil, 0)
	svc.Stop()
	cfg.Backoff = agent.Backoff{Initial: 100 * time.Millisecond, Max: 500 * time.Millisecond}
	a := agenttest.Run(t, cfg)
	ev.Wait(ctx, t, agent.EventFetchFailed, 2)
	if len(e.Snapshot().Attempts) != 0 {
		t.Fatal("the agent connected without credentials")
	}
	svc.Start()
	ev.Wait(ctx, t, agent.EventConnected, 1)
	publish(ctx, t, a, "up", "service came up")
	allDelivered(t, e, []string{"service came up"})
}

func TestBrokerRestart(t *testing.T) {
	ctx := agenttest.Context(t, 60*time.Second)
	svc := StartService(t, nil)
	d := devices[3]
	e, cfg, ev := setup(t, svc, d, "", nil, 0)
	cfg.Backoff = agent.Backoff{Initial: 100 * time.Millisecond, Max: 500 * time.Millisecond}
	got := make(chan agent.Message, 4)
	cfg.Subscriptions = []agent.Subscription{{Topic: "devices/lamp/messages/devicebound/#", QoS: 1}}
	cfg.OnMessage = func(m agent.Message) { got <- m }
	a := agenttest.Run(t, cfg)
	ev.Wait(ctx, t, agent.EventConnected, 1)
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	ev.Wait(ctx, t, agent.EventLost, 1)
	ev.Wait(ctx, t, agent.EventConnectFailed, 1) // the broker is down for a while
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	ev.Wait(ctx, t, agent.EventConnected, 2)
	publish(ctx, t, a, "devices/lamp/messages/events/", "back")
	allDelivered(t, e, []string{"back"})
	// The subscription was made again on the new connection.
	if err := e.Publish("devices/lamp/messages/devicebound/x", []byte("cmd"), 1); err != nil {
		t.Fatal(err)
	}
	if m := receive(ctx, t, got, "no cloud-to-device message after the restart"); string(m.Payload) != "cmd" {
		t.Fatalf("got %q", m.Payload)
	}
}
