// Package agent is the device side of credsign: it fetches short-lived MQTT
// credentials with a device token, connects to the cloud broker with paho,
// and keeps the connection up across credential refreshes, enforced
// expiries, broker restarts and network loss, without ever holding the
// device's cloud secret. cmd/credsign-agent wraps it; integrators can embed
// it.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Config configures an Agent.
type Config struct {
	// Source hands out credentials; required.
	Source Source
	// BrokerRoots verifies the broker's TLS certificate; nil means the
	// system roots.
	BrokerRoots *x509.CertPool
	// KeepAlive is the MQTT keep-alive; default 60s, inside every
	// supported cloud's limits (Alibaba and Huawei accept 30 to 1200s).
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt; default 30s.
	ConnectTimeout time.Duration
	// Subscriptions are (re)made on every connection.
	Subscriptions []Subscription
	// OnMessage receives messages on the subscriptions; it may be called
	// concurrently.
	OnMessage func(Message)
	// Backoff paces retries after any failure.
	Backoff Backoff
	// Fatal, when set, picks the errors Run gives up on: Run returns the
	// first error (of fetching credentials or connecting) that Fatal
	// reports true for, instead of retrying it. Nil retries everything, as
	// a device in the field must; one-shot tools pass Permanent.
	Fatal func(error) bool
	// StableAfter is how long a connection must last for the back-off to
	// start over; default 30s.
	StableAfter time.Duration
	// Logger receives progress and errors (never a password or token);
	// default discards.
	Logger *slog.Logger
	// OnEvent, when set, is told of every step (for tests and monitoring).
	OnEvent func(Event)
}

// Subscription is a topic filter and the QoS asked for it.
type Subscription struct {
	// Topic is the filter; empty when Commands is set.
	Topic string
	// Commands subscribes, instead of Topic, to the commands topic of the
	// credentials of each connection (Credentials.Topics.Commands), so a
	// device re-registered on another cloud follows it.
	Commands bool
	QoS      byte
}

// Message is a message received on a subscription.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// EventKind says what happened.
type EventKind int

// The events an Agent reports.
const (
	EventFetched           EventKind = iota // new credentials arrived
	EventFetchFailed                        // credsign could not be asked or refused
	EventConnected                          // the broker accepted the CONNECT
	EventConnectFailed                      // the CONNECT failed (Err wraps ErrRejected when refused)
	EventLost                               // an established connection dropped
	EventRotate                             // reconnecting with fresh credentials: before an enforced expiry, or they name another broker
	EventBackoff                            // waiting Delay before the next try
	EventTokenRotated                       // the device token was exchanged for a new one
	EventTokenRotateFailed                  // exchanging the device token failed (Err says why)
)

var eventNames = [...]string{"fetched", "fetch-failed", "connected", "connect-failed", "lost", "rotate", "backoff", "token-rotated", "token-rotate-failed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is one step of the agent's life.
type Event struct {
	Kind     EventKind
	ClientID string
	Err      error
	Delay    time.Duration
}

// Agent keeps one device connected.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	pubq chan *pending

	// retry is the message being published when the last connection ended;
	// only the (single, sequential) send loop touches it.
	retry *pending

	mu        sync.Mutex
	connected bool
}

type pending struct {
	topic     string
	telemetry bool // publish to the connection's Topics.Telemetry instead of topic
	payload   []byte
	qos       byte
	done      chan error
}

// New checks cfg and returns an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Source == nil {
		return nil, errors.New("agent: no credentials source")
	}
	for _, s := range cfg.Subscriptions {
		if (s.Topic == "") == !s.Commands || s.QoS > 2 {
			return nil, fmt.Errorf("agent: invalid subscription %q (commands %t) qos %d: want a topic or Commands, QoS 0 to 2", s.Topic, s.Commands, s.QoS)
		}
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 60 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = 30 * time.Second
	}
	return &Agent{cfg: cfg, log: orDiscard(cfg.Logger), pubq: make(chan *pending)}, nil
}

func (a *Agent) emit(e Event) { emit(a.cfg.OnEvent, e) }

// emit tells f of e, when f is set.
func emit(f func(Event), e Event) {
	if f != nil {
		f(e)
	}
}

// Connected reports whether the agent has a live connection.
func (a *Agent) Connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connected
}

func (a *Agent) setConnected(v bool) {
	a.mu.Lock()
	a.connected = v
	a.mu.Unlock()
}

// Publish queues a message and returns once the broker acknowledged it
// (QoS 1 and 2) or it was written (QoS 0). A message whose connection drops
// before the acknowledgement is sent again on the next connection, so QoS 1
// is delivered at least once. Publish blocks while the agent is
// disconnected; when ctx ends first the message may still be sent.
func (a *Agent) Publish(ctx context.Context, topic string, payload []byte, qos byte) error {
	return a.publish(ctx, &pending{topic: topic, payload: payload, qos: qos})
}

// PublishTelemetry is Publish to the telemetry topic of the credentials the
// message goes out with (Credentials.Topics.Telemetry): whatever cloud the
// device is registered on when the message is sent, and the new cloud's
// topic after a re-registration.
func (a *Agent) PublishTelemetry(ctx context.Context, payload []byte, qos byte) error {
	return a.publish(ctx, &pending{topic: "telemetry", telemetry: true, payload: payload, qos: qos})
}

func (a *Agent) publish(ctx context.Context, p *pending) error {
	topic := p.topic
	if p.qos > 2 {
		return fmt.Errorf("publish to %s: invalid qos %d", topic, p.qos)
	}
	p.done = make(chan error, 1)
	select {
	case a.pubq <- p:
	case <-ctx.Done():
		return fmt.Errorf("publish to %s: %w", topic, context.Cause(ctx))
	}
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish to %s: %w", topic, context.Cause(ctx))
	}
}

// Run keeps the device connected until ctx ends; it returns ctx's cause,
// or the error Config.Fatal gave up on.
func (a *Agent) Run(ctx context.Context) error {
	defer startRotation(ctx, a.cfg.Source, a.cfg.Backoff, a.log, a.cfg.OnEvent)()
	var (
		creds     *Credentials
		refreshAt time.Time
		retry     = retries{b: a.cfg.Backoff}
	)
	fatal := func(err error) bool { return a.cfg.Fatal != nil && a.cfg.Fatal(err) }
	backoff := func(err error) error {
		d := retry.next(err)
		a.log.Info("retrying later", "in", d.Round(time.Millisecond).String())
		a.emit(Event{Kind: EventBackoff, Delay: d})
		return sleep(ctx, d)
	}
	for ctx.Err() == nil {
		if creds == nil || due(refreshAt) || expired(*creds) {
			c, err := a.cfg.Source.Fetch(ctx)
			switch {
			case ctx.Err() != nil:
				return context.Cause(ctx)
			case err != nil:
				a.emit(Event{Kind: EventFetchFailed, Err: err})
				if fatal(err) {
					return err
				}
				a.log.Warn("cannot fetch credentials", "error", err)
				if creds == nil || expired(*creds) {
					if backoff(err) != nil {
						return context.Cause(ctx)
					}
					continue
				}
				// The old triple is still good: use it, fetch again later.
				refreshAt = time.Now().Add(retry.next(err))
			default:
				creds, refreshAt = &c, c.RefreshAt()
				a.log.Info("fetched credentials", "creds", c.String(), "refresh_at", refreshAt.UTC().Format(time.RFC3339))
				a.emit(Event{Kind: EventFetched, ClientID: c.ClientID})
			}
		}
		start := time.Now()
		next, err := a.session(ctx, *creds, refreshAt)
		switch {
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case next != nil:
			// Fresh credentials before an enforced expiry: reconnect now.
			creds, refreshAt = next, next.RefreshAt()
			retry.reset()
			continue
		case fatal(err):
			return err
		case errors.Is(err, ErrRejected):
			a.log.Error("broker refused the device's credentials; not retrying at once", "error", err)
			creds = nil // ask credsign again: the device may have been fixed there
		}
		if time.Since(start) >= a.cfg.StableAfter {
			retry.reset()
		}
		if backoff(err) != nil {
			return context.Cause(ctx)
		}
	}
	return context.Cause(ctx)
}

func due(t time.Time) bool { return !t.IsZero() && !time.Now().Before(t) }

// expired reports whether a triple is past an expiry the cloud enforces.
func expired(c Credentials) bool {
	return c.ExpiryEnforced && c.ExpiresAt != nil && !time.Now().Before(*c.ExpiresAt)
}

// session connects with c and serves the connection until it drops (the
// error says why), ctx ends, or fresh credentials must replace c before an
// enforced expiry (returned as next).
func (a *Agent) session(ctx context.Context, c Credentials, refreshAt time.Time) (next *Credentials, err error) {
	lost := make(chan error, 1)
	cl, err := a.connect(ctx, c, lost)
	if err != nil {
		a.emit(Event{Kind: EventConnectFailed, ClientID: c.ClientID, Err: err})
		if !errors.Is(err, ErrRejected) {
			a.log.Warn("cannot connect", "broker", c.BrokerURL(), "error", err)
		}
		return nil, err
	}
	a.setConnected(true)
	a.log.Info("connected", "broker", c.BrokerURL(), "client_id", c.ClientID)
	a.emit(Event{Kind: EventConnected, ClientID: c.ClientID})

	stop, dead := make(chan struct{}), make(chan struct{})
	sent := make(chan struct{})
	go func() { defer close(sent); a.sendLoop(cl, c.Topics, stop, dead) }()
	end := func(quiesce uint) {
		close(stop)
		<-sent
		a.setConnected(false)
		cl.Disconnect(quiesce)
	}

	timer := time.NewTimer(until(refreshAt))
	defer timer.Stop()
	retry := retries{b: a.cfg.Backoff}
	for {
		select {
		case <-ctx.Done():
			close(dead) // do not wait for an acknowledgement that may never come
			end(250)
			return nil, context.Cause(ctx)
		case err := <-lost:
			close(dead)
			end(0)
			a.log.Warn("connection lost", "broker", c.BrokerURL(), "error", err)
			a.emit(Event{Kind: EventLost, ClientID: c.ClientID, Err: err})
			return nil, fmt.Errorf("connection to %s lost: %w", c.BrokerURL(), err)
		case <-timer.C:
			fresh, err := a.cfg.Source.Fetch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					continue
				}
				d := retry.next(err)
				a.log.Warn("cannot refresh credentials; staying connected", "error", err, "retry_in", d.Round(time.Millisecond).String())
				a.emit(Event{Kind: EventFetchFailed, Err: err})
				timer.Reset(d)
				continue
			}
			a.log.Info("refreshed credentials", "creds", fresh.String())
			a.emit(Event{Kind: EventFetched, ClientID: fresh.ClientID})
			if moved(c, fresh) {
				// Re-registered on another cloud or broker: the old one may
				// keep this session, but the device now lives elsewhere.
				a.log.Info("the fresh credentials name another broker or topics; reconnecting", "from", c.BrokerURL(), "to", fresh.BrokerURL(), "cloud", fresh.Cloud)
				a.emit(Event{Kind: EventRotate, ClientID: fresh.ClientID})
				end(1000)
				return &fresh, nil
			}
			if c.ExpiryEnforced && c.ExpiresAt != nil {
				a.log.Info("reconnecting with fresh credentials before the old ones expire", "expires_at", c.ExpiresAt.UTC().Format(time.RFC3339))
				a.emit(Event{Kind: EventRotate, ClientID: fresh.ClientID})
				end(1000)
				return &fresh, nil
			}
			// Nothing will drop this connection: keep it, and use the fresh
			// triple for the next one.
			c = fresh
			retry.reset()
			timer.Reset(until(fresh.RefreshAt()))
		}
	}
}

// moved reports whether fresh credentials are for another connection than
// old: another cloud, broker, transport or set of topics (the device was
// re-registered), rather than a new triple for the same one.
func moved(old, fresh Credentials) bool {
	return old.Cloud != fresh.Cloud || old.Host != fresh.Host || old.Port != fresh.Port || old.TLS != fresh.TLS ||
		old.ALPN != fresh.ALPN || old.Topics != fresh.Topics
}

// until returns how long until t; a zero t means practically never.
func until(t time.Time) time.Duration {
	if t.IsZero() {
		return 100 * 365 * 24 * time.Hour
	}
	return max(time.Until(t), 0)
}

// connect opens a paho connection with c. The ClientId is part of the
// triple (Alibaba and Huawei put the issue time in it), so each triple gets
// its own paho client; its credentials provider hands paho that triple at
// CONNECT time.
func (a *Agent) connect(ctx context.Context, c Credentials, lost chan<- error) (paho.Client, error) {
	o := paho.NewClientOptions().
		AddBroker(c.BrokerURL()).
		SetClientID(c.ClientID).
		SetCredentialsProvider(func() (string, string) { return c.Username, c.Password }).
		SetProtocolVersion(4). // no silent retry as MQTT 3.1 after a refusal
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(a.cfg.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(a.cfg.ConnectTimeout).
		SetWriteTimeout(a.cfg.ConnectTimeout).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if c.TLS {
		tc := &tls.Config{RootCAs: a.cfg.BrokerRoots, ServerName: c.Host, MinVersion: tls.VersionTLS12}
		if c.ALPN != "" {
			tc.NextProtos = []string{c.ALPN} // AWS IoT on 443 refuses the handshake without it
		}
		o.SetTLSConfig(tc)
	}
	cl := paho.NewClient(o)
	if err := wait(ctx, cl.Connect()); err != nil {
		cl.Disconnect(0)
		if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) ||
			errors.Is(err, packets.ErrorRefusedIDRejected) {
			return nil, fmt.Errorf("%w: %s refused CONNECT of %s device %s (client id %q): %v; check the secret and params registered in credsign",
				ErrRejected, c.Addr(), c.Cloud, c.DeviceID, c.ClientID, err)
		}
		if certificateError(err) {
			return nil, fmt.Errorf("%w: connect to %s: %w", ErrBrokerCertificate, c.BrokerURL(), err)
		}
		return nil, fmt.Errorf("connect to %s: %w", c.BrokerURL(), err)
	}
	for _, s := range a.cfg.Subscriptions {
		topic := s.Topic
		if s.Commands {
			if topic = c.Topics.Commands; topic == "" {
				cl.Disconnect(0)
				return nil, fmt.Errorf("subscribe to commands: the %s credentials name no commands topic (a credsign older than topics?)", c.Cloud)
			}
		}
		if err := wait(ctx, cl.Subscribe(topic, s.QoS, a.handle)); err != nil {
			cl.Disconnect(0)
			return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
		}
	}
	return cl, nil
}

func (a *Agent) handle(_ paho.Client, m paho.Message) {
	if a.cfg.OnMessage != nil {
		a.cfg.OnMessage(Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retained: m.Retained()})
	}
}

func wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// sendLoop publishes queued messages on one connection, telemetry to the
// connection's telemetry topic. It returns when stop is closed (after the
// message in flight is settled) or when the connection is dead; a message
// not acknowledged by then is kept for the next connection.
func (a *Agent) sendLoop(cl paho.Client, topics Topics, stop, dead <-chan struct{}) {
	for {
		p := a.retry
		if p == nil {
			select {
			case p = <-a.pubq:
			case <-stop:
				return
			}
		}
		a.retry = p
		topic := p.topic
		if p.telemetry {
			if topic = topics.Telemetry; topic == "" {
				p.done <- errors.New("the credentials name no telemetry topic (a credsign older than topics?)")
				a.retry = nil
				continue
			}
		}
		tok := cl.Publish(topic, p.qos, false, p.payload)
		select {
		case <-tok.Done():
		case <-dead:
			return
		}
		if err := tok.Error(); err != nil {
			if !cl.IsConnectionOpen() {
				return // sent again on the next connection
			}
			p.done <- err
		} else {
			p.done <- nil
		}
		a.retry = nil
	}
}
