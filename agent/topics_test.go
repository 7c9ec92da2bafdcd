package agent_test

import (
	"context"
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/agent/agenttest"
	"github.com/credsign/credsign/internal/cloudemu"
)

// moving is a Source for a device that is re-registered from one cloud to
// another: it signs for devices[from] until Move, then for devices[to].
type moving struct {
	signers [2]*signer
	moved   atomic.Bool
}

func (m *moving) Fetch(ctx context.Context) (agent.Credentials, error) {
	if m.moved.Load() {
		return m.signers[1].Fetch(ctx)
	}
	return m.signers[0].Fetch(ctx)
}

// TestTelemetryAndCommandsFollowTheCloud: PublishTelemetry and a Commands
// subscription use the topics of the credentials, and when fresh
// credentials name another cloud the agent leaves the old broker (Alibaba,
// which never drops the session itself) for the new one at its next
// refresh, without being told.
func TestTelemetryAndCommandsFollowTheCloud(t *testing.T) {
	ctx := agenttest.Context(t, 60*time.Second)
	from, to := devices[0], devices[2] // aliyun (plain, nothing enforced), huawei (TLS)
	e1, e2 := emulate(t, from, nil), emulate(t, to, nil)
	src := &moving{signers: [2]*signer{{d: from, e: e1, ttl: 3 * time.Second}, {d: to, e: e2, ttl: 3 * time.Second}}}
	got := make(chan agent.Message, 4)
	ev := agenttest.NewRecorder()
	a := agenttest.Run(t, agent.Config{
		Source: src, BrokerRoots: roots(e2), OnEvent: ev.Add,
		Subscriptions: []agent.Subscription{{Commands: true, QoS: 1}},
		OnMessage:     func(m agent.Message) { got <- m },
	})
	if err := a.PublishTelemetry(ctx, []byte("t1"), 1); err != nil {
		t.Fatal(err)
	}
	s, err := e1.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) > 0 })
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Messages[0]; m.Topic != "/a1pk/lamp/user/update" || string(m.Payload) != "t1" {
		t.Fatalf("aliyun got %+v, want t1 on its telemetry topic", m)
	}
	command := func(e *cloudemu.Emulator, topic string) {
		t.Helper()
		if err := e.Publish(topic, []byte("on"), 1); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m.Topic != topic {
				t.Fatalf("agent got %+v, want a command on %s", m, topic)
			}
		case <-ctx.Done():
			t.Fatalf("no command on %s reached the agent", topic)
		}
	}
	command(e1, "/a1pk/lamp/user/get")

	src.moved.Store(true)
	ev.Wait(ctx, t, agent.EventRotate, 1) // the next refresh names Huawei
	// A message published while the agent still holds the old session goes
	// to the old cloud, as it should: publish once it is on the new one.
	if _, err := e2.Wait(ctx, func(s cloudemu.State) bool { return len(s.Connected) > 0 }); err != nil {
		t.Fatal("the agent did not connect to the new cloud")
	}
	if err := a.PublishTelemetry(ctx, []byte("t2"), 1); err != nil {
		t.Fatal(err)
	}
	s, err = e2.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) > 0 })
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Messages[0]; m.Topic != "$oc/devices/prod_lamp/sys/messages/up" || string(m.Payload) != "t2" {
		t.Fatalf("huawei got %+v, want t2 on its telemetry topic", m)
	}
	if _, err := e1.Wait(ctx, func(s cloudemu.State) bool { return len(s.Connected) == 0 }); err != nil {
		t.Fatal("the agent stayed connected to the old cloud")
	}
	if n := len(e1.Snapshot().Messages); n != 1 {
		t.Fatalf("the old cloud got %d messages, want 1", n)
	}
	command(e2, "$oc/devices/prod_lamp/sys/commands/request_id=7")
}

// TestAgentOffersALPN: credentials that name an ALPN protocol (AWS IoT on
// 443) get a handshake offering it; the AWS emulator refuses one without.
func TestAgentOffersALPN(t *testing.T) {
	ctx := agenttest.Context(t, 30*time.Second)
	e, err := cloudemu.Start(cloudemu.Options{Cloud: cloudemu.AWS, TLS: true, JWKS: []byte(`{"keys":[]}`)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.CAPEM())
	for _, alpn := range []string{"", "mqtt"} {
		ev := agenttest.NewRecorder()
		src := agent.SourceFunc(func(context.Context) (agent.Credentials, error) {
			return agent.Credentials{Cloud: "aws", ClientID: "d", Username: "d?x", Host: e.Host(), Port: e.Port(), TLS: true, ALPN: alpn}, nil
		})
		agenttest.Run(t, agent.Config{Source: src, BrokerRoots: pool, OnEvent: ev.Add, Backoff: agent.Backoff{Initial: time.Hour}})
		ev.Wait(ctx, t, agent.EventConnectFailed, 1)
		// The handshake fails without ALPN: no CONNECT reaches the broker.
		// With it the CONNECT arrives (and is refused: no such authorizer).
		_, err := e.Wait(ctx, func(s cloudemu.State) bool { return (len(s.Attempts) > 0) == (alpn != "") })
		if err != nil || len(e.Snapshot().Attempts) > 1 {
			t.Fatalf("alpn %q: %d CONNECTs reached the broker", alpn, len(e.Snapshot().Attempts))
		}
	}
}
