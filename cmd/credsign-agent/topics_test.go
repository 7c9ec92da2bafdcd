package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/internal/cloudemu"
)

// pub --telemetry publishes to the topic credsign names for the cloud
// (Azure's device-to-cloud topic here), sub --commands prints what the
// cloud sends to its commands topic, and creds shows both topics.
func TestPubTelemetryAndSubCommands(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	r := f.run(ctx, nil, "creds")
	var c agent.Credentials
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatalf("creds: %v: %s", err, r.stdout)
	}
	if c.Topics.Telemetry != "devices/lamp/messages/events/" || c.Topics.Commands != "devices/lamp/messages/devicebound/#" {
		t.Fatalf("creds topics %+v", c.Topics)
	}
	if r := f.run(ctx, nil, "creds", "--format", "env"); !strings.Contains(r.stdout, "CREDSIGN_MQTT_TELEMETRY_TOPIC='devices/lamp/messages/events/'\n") {
		t.Fatalf("creds --format env lacks the telemetry topic:\n%s", r.stdout)
	}

	r = f.run(ctx, strings.NewReader("23.5"), "pub", "--broker-ca-file", f.caFile, "--telemetry")
	if r.code != 0 {
		t.Fatalf("pub --telemetry: exit %d: %s", r.code, r.stderr)
	}
	s, err := f.emu.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) > 0 })
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Messages[0]; m.Topic != c.Topics.Telemetry || string(m.Payload) != "23.5" {
		t.Fatalf("broker got %+v, want 23.5 on %s", m, c.Topics.Telemetry)
	}

	done := make(chan result, 1)
	go func() { done <- f.run(ctx, nil, "sub", "--broker-ca-file", f.caFile, "--commands", "-C", "1", "-v") }()
	for {
		select {
		case r := <-done:
			if r.code != 0 || r.stdout != "devices/lamp/messages/devicebound/led on\n" {
				t.Fatalf("sub --commands: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			return
		case <-time.After(50 * time.Millisecond): // until the subscription is in place
			if err := f.emu.Publish("devices/lamp/messages/devicebound/led", []byte("on"), 1); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("sub --commands printed nothing")
		}
	}
}
