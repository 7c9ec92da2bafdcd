package e2e

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/agent/agenttest"
)

// observer is a plain anonymous MQTT client on the same broker.
func (m *Mosquitto) observer(t *testing.T, topic string, got chan<- string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().SetClientID("observer").SetProtocolVersion(4).SetAutoReconnect(false)
	if m.ca != nil {
		o.AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", m.Port))
		o.SetTLSConfig(&tls.Config{RootCAs: m.Roots(), MinVersion: tls.VersionTLS12})
	} else {
		o.AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", m.Port))
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
	svc := StartService(t, nil)
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[withTLS], func(t *testing.T) {
			ctx := agenttest.Context(t, 60*time.Second)
			m := StartMosquitto(t, MosquittoOptions{TLS: withTLS})
			id := "mosq-" + strconv.FormatBool(withTLS)
			// An Alibaba device reached at the loopback broker: securemode 2
			// (TLS) or 3 (plain TCP).
			params := map[string]any{"productKey": "a1pk", "deviceName": id, "host": "127.0.0.1", "port": m.Port,
				"secureMode": map[bool]int{true: 2, false: 3}[withTLS]}
			tokenFile := svc.Register(id, "aliyun", params, "s3cret")
			up := make(chan string, 1)
			obs := m.observer(t, "/a1pk/"+id+"/user/up", up)
			down := make(chan agent.Message, 1)
			ev := agenttest.NewRecorder()
			a := agenttest.Run(t, agent.Config{
				Source: svc.Source(id, tokenFile, 0), BrokerRoots: m.Roots(), OnEvent: ev.Add,
				Subscriptions: []agent.Subscription{{Topic: "/a1pk/" + id + "/user/down", QoS: 1}},
				OnMessage:     func(msg agent.Message) { down <- msg },
			})
			publish(ctx, t, a, "/a1pk/"+id+"/user/up", "hello mosquitto")
			if got := receive(ctx, t, up, "the agent's message did not reach the observer"); got != "hello mosquitto" {
				t.Fatalf("observer got %q", got)
			}
			ev.Wait(ctx, t, agent.EventConnected, 1) // subscribed before Connected is reported
			if tok := obs.Publish("/a1pk/"+id+"/user/down", 1, false, "hello agent"); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatalf("observer publish: %v", tok.Error())
			}
			if msg := receive(ctx, t, down, "the observer's message did not reach the agent"); string(msg.Payload) != "hello agent" {
				t.Fatalf("agent got %q", msg.Payload)
			}
		})
	}
}
