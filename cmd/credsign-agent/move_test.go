package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/e2e"
	"github.com/credsign/credsign/internal/testing/testutil"
)

// TestDeviceMovesBetweenCloudsWithoutNewFirmware: one `run --pub-telemetry
// --sub-commands` process, with one device token and one configuration,
// keeps publishing "telemetry" while the provisioner re-registers the
// device from Alibaba to a JWT broker to Huawei (PUT /v1/devices/{id}):
// at its next refresh the agent fetches the new cloud's credentials and
// topics, leaves the old broker and publishes to the new cloud's telemetry
// topic on the new broker, whose commands it then prints.
func TestDeviceMovesBetweenCloudsWithoutNewFirmware(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	svc := e2e.NewService(t, nil)
	svc.Start()
	type stop struct {
		dev       e2e.Device
		telemetry string // the cloud's telemetry topic for the device
		command   string // a topic the cloud sends commands to
	}
	stops := []stop{
		{e2e.Device{ID: "lamp", Cloud: cloudemu.Aliyun, Params: map[string]any{"productKey": "a1pk", "deviceName": "lamp"}, Secret: "s3cret-aliyun", TLS: true},
			"/a1pk/lamp/user/update", "/a1pk/lamp/user/get"},
		{e2e.Device{ID: "lamp", Cloud: cloudemu.JWT, TLS: true},
			"devices/lamp/telemetry", "devices/lamp/commands/reboot"},
		// Last: a Huawei triple is good to the end of the hour whatever the
		// TTL asked, so the agent would only look again near then.
		{e2e.Device{ID: "lamp", Cloud: cloudemu.Huawei, Params: map[string]any{"deviceId": "prod_lamp"}, Secret: "s3cret-huawei", TLS: true},
			"$oc/devices/prod_lamp/sys/messages/up", "$oc/devices/prod_lamp/sys/commands/request_id=1"},
	}
	emus := make([]*cloudemu.Emulator, len(stops))
	params := make([]map[string]any, len(stops))
	var bundle []byte
	for i, s := range stops {
		emus[i], params[i] = e2e.Emulate(t, svc, s.dev, nil)
		bundle = append(bundle, emus[i].CAPEM()...)
	}
	caFile := filepath.Join(t.TempDir(), "brokers.pem")
	if err := os.WriteFile(caFile, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := svc.Register("lamp", stops[0].dev.Cloud, params[0], stops[0].dev.Secret)

	// The device's firmware: one configuration for its whole life.
	sock := filepath.Join(t.TempDir(), "telemetry.sock")
	getenv := env(map[string]string{"CREDSIGN_SERVER": svc.URL(), "CREDSIGN_DEVICE": "lamp", "CREDSIGN_TOKEN_FILE": tokenFile,
		"CREDSIGN_BROKER_CA_FILE": caFile, "CREDSIGN_TTL": "3s"})
	runCtx, stopRun := context.WithCancel(ctx)
	out, errb := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(runCtx, []string{"run", "--pub-telemetry", "--sub-commands", "--pub-socket", sock}, strings.NewReader(""), out, errb, getenv)
	}()
	conn := dialSocket(ctx, t, sock)
	defer conn.Close()

	n := 0
	for i, s := range stops {
		if i > 0 {
			svc.Put("lamp", s.dev.Cloud, params[i], s.dev.Secret) // the provisioner moves the device
		}
		// Telemetry every 50 ms until the new cloud has some on its topic.
		for arrived := false; !arrived; {
			n++
			if _, err := fmt.Fprintf(conn, "reading %d\n", n); err != nil {
				t.Fatal(err)
			}
			for _, m := range emus[i].Snapshot().Messages {
				arrived = arrived || m.Topic == s.telemetry
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				t.Fatalf("no telemetry reached %s on %s after %d lines; agent log:\n%s", s.dev.Cloud, s.telemetry, n, errb.String())
			}
		}
		for _, m := range emus[i].Snapshot().Messages {
			if m.Topic != s.telemetry {
				t.Fatalf("%s got a message on %s, want only its telemetry topic %s", s.dev.Cloud, m.Topic, s.telemetry)
			}
		}
		if i > 0 {
			// The agent left the old cloud, which gets nothing more.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			old, err := emus[i-1].Wait(wctx, func(s cloudemu.State) bool { return len(s.Connected) == 0 })
			cancel()
			if err != nil {
				t.Fatalf("the agent is still connected to %s", stops[i-1].dev.Cloud)
			}
			// The next line goes to the new cloud only.
			n++
			line := fmt.Sprintf("reading %d", n)
			if _, err := fmt.Fprintln(conn, line); err != nil {
				t.Fatal(err)
			}
			wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			_, err = emus[i].Wait(wctx, func(s cloudemu.State) bool {
				return slices.ContainsFunc(s.Messages, func(m cloudemu.Message) bool { return string(m.Payload) == line })
			})
			cancel()
			if err != nil {
				t.Fatalf("%q did not reach %s", line, s.dev.Cloud)
			}
			if later := emus[i-1].Snapshot(); len(later.Messages) != len(old.Messages) {
				t.Fatalf("%s still receives telemetry after the move", stops[i-1].dev.Cloud)
			}
		}
		// Commands of the current cloud reach the device.
		if err := emus[i].Publish(s.command, []byte("cmd-"+s.dev.Cloud), 1); err != nil {
			t.Fatal(err)
		}
		for want := s.command + " cmd-" + s.dev.Cloud + "\n"; !strings.Contains(out.String(), want); {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				t.Fatalf("run printed %q, want %q", out.String(), want)
			}
		}
	}
	// Every line reached one cloud or another, in all three.
	total := 0
	for _, e := range emus {
		total += len(e.Snapshot().Messages)
	}
	if total < n-1 { // the last line may still be on its way
		t.Fatalf("%d of %d lines reached a broker", total, n)
	}
	stopRun()
	if code := <-done; code != 0 {
		t.Fatalf("run exit %d: %s", code, errb.String())
	}
	if strings.Contains(errb.String(), "s3cret") {
		t.Fatal("the agent logged a secret")
	}
}
