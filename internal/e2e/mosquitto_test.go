package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/agent/agenttest"
	"github.com/credsign/credsign/internal/cloudemu"

	"github.com/credsign/credsign/internal/testutil"
)

// mosquitto is Debian's broker, started on a free loopback port.
type mosquitto struct {
	port int
	ca   *cloudemu.TestCA // nil for a plain listener
}

func mosquittoBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	if os.Getenv("CREDSIGN_REQUIRE_MOSQUITTO") == "1" {
		t.Fatal("mosquitto is not installed and CREDSIGN_REQUIRE_MOSQUITTO=1: apt-get install -y mosquitto")
	}
	t.Skip("mosquitto is not installed (apt-get install -y mosquitto); set CREDSIGN_REQUIRE_MOSQUITTO=1 to fail instead")
	return ""
}

func startMosquitto(t *testing.T, withTLS bool) *mosquitto {
	t.Helper()
	bin := mosquittoBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir := t.TempDir()
	m := &mosquitto{port: port}
	conf := fmt.Sprintf("per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest stderr\nlistener %d 127.0.0.1\n", port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else it drops to user mosquitto, who cannot read the test's files
	}
	if withTLS {
		ca, err := cloudemu.NewTestCA()
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := ca.Issue("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"ca.pem": ca.CertPEM(), "cert.pem": cert, "key.pem": key} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		conf += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\n",
			filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		m.ca = ca
	}
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &testutil.SyncBuffer{}
	cmd := exec.Command(bin, "-c", cf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			_ = c.Close()
			return m
		}
		select {
		case err := <-exited:
			t.Fatalf("mosquitto exited: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not listen on %d: %s", port, out.String())
		}
	}
}

func (m *mosquitto) roots() *x509.CertPool {
	if m.ca == nil {
		return nil
	}
	return m.ca.Pool()
}

// observer is a plain anonymous MQTT client on the same broker.
func (m *mosquitto) observer(t *testing.T, topic string, got chan<- string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().SetClientID("observer").SetProtocolVersion(4).SetAutoReconnect(false)
	if m.ca != nil {
		o.AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", m.port))
		o.SetTLSConfig(&tls.Config{RootCAs: m.roots(), MinVersion: tls.VersionTLS12})
	} else {
		o.AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", m.port))
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	if tok := c.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) { got <- string(msg.Payload()) }); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("observer subscribe: %v", tok.Error())
	}
	return c
}

func TestMosquittoInterop(t *testing.T) {
	svc := newService(t, nil)
	svc.start()
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[withTLS], func(t *testing.T) {
			ctx := agenttest.Context(t, 60*time.Second)
			m := startMosquitto(t, withTLS)
			id := "mosq-" + strconv.FormatBool(withTLS)
			// An Alibaba device reached at the loopback broker: securemode 2
			// (TLS) or 3 (plain TCP).
			params := map[string]any{"productKey": "a1pk", "deviceName": id, "host": "127.0.0.1", "port": m.port,
				"secureMode": map[bool]int{true: 2, false: 3}[withTLS]}
			tokenFile := svc.register(id, "aliyun", params, "s3cret")
			up := make(chan string, 1)
			obs := m.observer(t, "/a1pk/"+id+"/user/up", up)
			down := make(chan agent.Message, 1)
			ev := agenttest.NewRecorder()
			a := agenttest.Run(t, agent.Config{
				Source: svc.source(id, tokenFile, 0), BrokerRoots: m.roots(), OnEvent: ev.Add,
				Subscriptions: []agent.Subscription{{Topic: "/a1pk/" + id + "/user/down", QoS: 1}},
				OnMessage:     func(msg agent.Message) { down <- msg },
			})
			publish(ctx, t, a, "/a1pk/"+id+"/user/up", "hello mosquitto")
			select {
			case got := <-up:
				if got != "hello mosquitto" {
					t.Fatalf("observer got %q", got)
				}
			case <-ctx.Done():
				t.Fatal("the agent's message did not reach the observer")
			}
			ev.Wait(ctx, t, agent.EventConnected, 1) // subscribed before Connected is reported
			if tok := obs.Publish("/a1pk/"+id+"/user/down", 1, false, "hello agent"); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatalf("observer publish: %v", tok.Error())
			}
			select {
			case msg := <-down:
				if string(msg.Payload) != "hello agent" {
					t.Fatalf("agent got %q", msg.Payload)
				}
			case <-ctx.Done():
				t.Fatal("the observer's message did not reach the agent")
			}
		})
	}
}
