package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/agent"
	"github.com/credsign/credsign/agent/agenttest"
	"github.com/credsign/credsign/internal/cloudemu"
)

// oneNETKey is a OneNET device key (base64 of 32 bytes).
const oneNETKey = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="

// newCloudDevices are a device of each cloud of issue 11; the aws one gets
// a fresh authorizer key pair.
func newCloudDevices(t *testing.T) []Device {
	priv, pub := RSAKeyPEMs(t)
	return []Device{
		{ID: "lamp-onenet", Cloud: cloudemu.OneNET, Params: map[string]any{"productId": "Pq1x2", "deviceName": "lamp-onenet"}, Secret: oneNETKey, TLS: true},
		{ID: "lamp-baidu", Cloud: cloudemu.Baidu, Params: map[string]any{"iotCoreId": "afyxkdm", "deviceKey": "lamp"}, Secret: "s3cret-baidu", TLS: true},
		{ID: "lamp-tuya", Cloud: cloudemu.Tuya, Params: map[string]any{"deviceId": "6c8a1b2c3d4e5f"}, Secret: "s3cret-tuya-0016", TLS: true},
		{ID: "lamp-jwt", Cloud: cloudemu.JWT, TLS: true},
		{ID: "lamp-aws", Cloud: cloudemu.AWS, Params: map[string]any{"authorizerName": "credsign-auth"}, Secret: priv, BrokerSecret: pub, TLS: true},
	}
}

// pemSecretAccepted checks that an aws device, whose secret is a PEM key
// (lines of text), registers, and that a control character other than a
// line break in it is still refused.
func pemSecretAccepted(t *testing.T, svc *Service) {
	t.Helper()
	priv, _ := RSAKeyPEMs(t)
	doc := func(secret string) map[string]any {
		return map[string]any{"cloud": cloudemu.AWS, "secret": secret, "params": map[string]any{"endpoint": "probe.example", "authorizerName": "probe"}}
	}
	if status, body := svc.Do(http.MethodPut, "/v1/devices/pem-probe", doc(strings.Replace(priv, "\n", "\x00", 1))); status != http.StatusUnprocessableEntity {
		t.Fatalf("PUT an aws device with a NUL in its PEM: %d %s, want 422", status, body)
	}
	if status, body := svc.Do(http.MethodPut, "/v1/devices/pem-probe", doc(priv)); status >= 300 {
		t.Fatalf("PUT an aws device with a PEM secret: %d %s", status, body)
	}
	svc.Call(http.MethodDelete, "/v1/devices/pem-probe", nil, nil)
}

// enforced reports whether the cloud refuses or drops a triple past its
// expiry: OneNET (et, at CONNECT), the token clouds (exp, also mid-session).
func enforced(cloud string) bool {
	return cloud == cloudemu.OneNET || cloud == cloudemu.Baidu || cloud == cloudemu.JWT || cloud == cloudemu.AWS
}

// recording is a Source that keeps the last credentials it handed out.
type recording struct {
	agent.Source
	mu   sync.Mutex
	last agent.Credentials
	all  []agent.Credentials
}

func (r *recording) Fetch(ctx context.Context) (agent.Credentials, error) {
	c, err := r.Source.Fetch(ctx)
	if err == nil {
		r.mu.Lock()
		r.last, r.all = c, append(r.all, c)
		r.mu.Unlock()
	}
	return c, err
}

func (r *recording) Last() agent.Credentials {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// concrete turns a topic filter into a topic it matches.
func concrete(filter string) string {
	return strings.NewReplacer("#", "cmd-1", "+", "x").Replace(filter)
}

// TestNewCloudsTelemetryAndCommands: through each new cloud's verifying
// emulator, over TLS (AWS on 443 with ALPN mqtt), the agent publishes
// telemetry to the topic credsign names and receives what the cloud sends
// on the commands topic.
func TestNewCloudsTelemetryAndCommands(t *testing.T) {
	svc := StartService(t, nil)
	for _, d := range newCloudDevices(t) {
		t.Run(d.Cloud, func(t *testing.T) {
			ctx := agenttest.Context(t, 60*time.Second)
			e, cfg, _ := setup(t, svc, d, "", nil, 0)
			src := &recording{Source: cfg.Source}
			cfg.Source = src
			got := make(chan agent.Message, 1)
			cfg.Subscriptions = []agent.Subscription{{Commands: true, QoS: 1}}
			cfg.OnMessage = func(m agent.Message) { got <- m }
			a := agenttest.Run(t, cfg)
			if err := a.PublishTelemetry(ctx, []byte("hello from "+d.ID), 1); err != nil {
				t.Fatal(err)
			}
			c := src.Last()
			if c.Topics.Telemetry == "" || c.Topics.Commands == "" || !c.TLS {
				t.Fatalf("credentials %s: topics %+v", c, c.Topics)
			}
			if (c.ALPN == "mqtt") != (d.Cloud == cloudemu.AWS) || (d.Cloud == cloudemu.AWS && c.Port != 443) {
				t.Fatalf("credentials %s: want ALPN mqtt on 443 for aws only", c)
			}
			s, err := e.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) > 0 })
			if err != nil {
				t.Fatal(err)
			}
			if m := s.Messages[0]; m.Topic != c.Topics.Telemetry || string(m.Payload) != "hello from "+d.ID || m.QoS != 1 {
				t.Fatalf("broker got %+v, want the payload on %s", m, c.Topics.Telemetry)
			}
			topic := concrete(c.Topics.Commands)
			if err := e.Publish(topic, []byte("on"), 1); err != nil {
				t.Fatal(err)
			}
			if m := receive(ctx, t, got, "no command on "+topic+" reached the agent"); m.Topic != topic || string(m.Payload) != "on" {
				t.Fatalf("agent got %+v", m)
			}
		})
	}
}

// TestNewCloudsRefreshBeforeExpiry: with 4-second credentials the agent
// refreshes in time: where the cloud enforces the expiry it reconnects
// with each fresh triple before the old one lapses (no refusal, no session
// dropped, no message lost); elsewhere it keeps its one connection.
func TestNewCloudsRefreshBeforeExpiry(t *testing.T) {
	svc := StartService(t, nil)
	for _, d := range newCloudDevices(t) {
		t.Run(d.Cloud, func(t *testing.T) {
			ctx := agenttest.Context(t, 90*time.Second)
			e, cfg, ev := setup(t, svc, d, "", nil, 4*time.Second)
			a := agenttest.Run(t, cfg)
			var sent []string
			for i := 0; ev.Count(agent.EventFetched) < 4; i++ {
				sent = append(sent, strconv.Itoa(i))
				if err := a.PublishTelemetry(ctx, []byte(sent[i]), 1); err != nil {
					t.Fatal(err)
				}
				select {
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
					t.Fatalf("%d fetches after %d messages", ev.Count(agent.EventFetched), len(sent))
				}
			}
			allDelivered(t, e, sent)
			s := e.Snapshot()
			refused, accepted := e.AttemptsSince(time.Time{})
			if refused != 0 || s.Expired != 0 {
				t.Fatalf("%d CONNECTs refused, %d sessions dropped at expiry: the agent should refresh first (%+v)", refused, s.Expired, s.Attempts)
			}
			if enforced(d.Cloud) {
				if n := ev.Count(agent.EventRotate); n < 2 || accepted < 3 {
					t.Fatalf("%d rotations, %d CONNECTs: want a reconnection with each fresh triple", n, accepted)
				}
			} else if accepted != 1 || ev.Count(agent.EventRotate) != 0 {
				t.Fatalf("%d CONNECTs: %s does not enforce expiry, the connection should stay", accepted, d.Cloud)
			}
		})
	}
}

// TestNewCloudsWrongSecretRefused: the emulator refuses a device whose
// secret in credsign is not the cloud's, and the agent reports it as a
// refusal without showing the secret. For jwt, which has no device secret,
// the broker trusts another credsign deployment's JWKS: a token signed by a
// key not in the set the broker trusts.
func TestNewCloudsWrongSecretRefused(t *testing.T) {
	svc := StartService(t, nil)
	other := StartService(t, nil)
	otherPriv, _ := RSAKeyPEMs(t)
	wrong := map[string]string{
		cloudemu.OneNET: base64.StdEncoding.EncodeToString([]byte("not-the-device-key-of-this-lamp!")),
		cloudemu.Baidu:  "not-the-secret",
		cloudemu.Tuya:   "not-the-secret00",
		cloudemu.AWS:    otherPriv,
	}
	for _, d := range newCloudDevices(t) {
		t.Run(d.Cloud, func(t *testing.T) {
			ctx := agenttest.Context(t, 60*time.Second)
			issuer := svc
			if d.Cloud == cloudemu.JWT {
				// The broker is configured with the other deployment's keys.
				_ = other.RotateJWTKey()
				issuer = other
			}
			e, params := Emulate(t, issuer, d, nil)
			if d.Cloud == cloudemu.AWS {
				pemSecretAccepted(t, svc)
			}
			secret := d.Secret
			if w, ok := wrong[d.Cloud]; ok {
				secret = w
			}
			cfg, ev := agentConfig(t, svc, e, d, params, secret, 0)
			cfg.Backoff = agent.Backoff{Initial: 200 * time.Millisecond, Max: time.Second}
			agenttest.Run(t, cfg)
			ev.Wait(ctx, t, agent.EventConnectFailed, 2)
			err := ev.All(agent.EventConnectFailed)[0].Err
			wantRejection(t, err, d.Cloud, secret)
			refused, accepted := e.AttemptsSince(time.Time{})
			if accepted != 0 || refused < 2 {
				t.Fatalf("%d CONNECTs accepted, %d refused: the wrong key must be refused each time", accepted, refused)
			}
			for _, at := range e.Snapshot().Attempts {
				if !errors.Is(at.Err, cloudemu.ErrBadCredentials) {
					t.Fatalf("refused for %v, want bad credentials", at.Err)
				}
			}
		})
	}
}

// kidOf returns the key id in a JWT's header.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return h.Kid
}

// tokenOf returns the JWT in credentials: the password for jwt, the
// token parameter of the username for aws.
func tokenOf(c agent.Credentials) string {
	if c.Cloud == cloudemu.AWS {
		_, query, _ := strings.Cut(c.Username, "?")
		q, _ := url.ParseQuery(query)
		return q.Get("token")
	}
	return c.Password
}

// TestTokenCloudsAcrossKeyRotation: the jwt and aws emulators verify the
// server's tokens against the JWKS fetched from its
// /.well-known/jwks.json; the admin rotates the key mid-run, and the agent
// keeps working: its next tokens carry the new kid, the broker fetches the
// set again and accepts them, and no message is lost.
func TestTokenCloudsAcrossKeyRotation(t *testing.T) {
	svc := StartService(t, nil)
	for _, d := range newCloudDevices(t)[3:] {
		t.Run(d.Cloud, func(t *testing.T) {
			ctx := agenttest.Context(t, 90*time.Second)
			e, cfg, ev := setup(t, svc, d, "", nil, 4*time.Second)
			src := &recording{Source: cfg.Source}
			cfg.Source = src
			a := agenttest.Run(t, cfg)
			var sent []string
			send := func() {
				sent = append(sent, strconv.Itoa(len(sent)))
				if err := a.PublishTelemetry(ctx, []byte(sent[len(sent)-1]), 1); err != nil {
					t.Fatal(err)
				}
			}
			send()
			before := kidOf(t, tokenOf(src.Last()))
			kid := svc.RotateJWTKey()
			if kid == before {
				t.Fatalf("rotation kept kid %s", kid)
			}
			rotatedAt := ev.Count(agent.EventConnected)
			for kidOf(t, tokenOf(src.Last())) != kid || ev.Count(agent.EventConnected) < rotatedAt+2 {
				send()
				select {
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
					t.Fatalf("no connection with a token of the new key %s (last kid %s)", kid, kidOf(t, tokenOf(src.Last())))
				}
			}
			send()
			allDelivered(t, e, sent)
			if refused, _ := e.AttemptsSince(time.Time{}); refused != 0 || e.Snapshot().Expired != 0 {
				t.Fatalf("%d CONNECTs refused, %d sessions dropped across the rotation", refused, e.Snapshot().Expired)
			}
		})
	}
}
