// Package cloudemu runs in-process MQTT brokers (mochi-mqtt) that
// authenticate devices the way Alibaba, Tencent, Huawei, Azure, OneNET,
// Baidu and Tuya IoT (TuyaLink and Tuya's older device protocol) do, the way a self-hosted broker checks a JWT, and the
// way AWS IoT Core with a custom authorizer does, for tests and local
// development. Each verifier is written from the vendors' documents
// (docs/clouds.md), independently of the recipes in cloud/ (JWTs are checked
// with go-jose against the issuer's JWKS), and enforces expiry the way its
// cloud does.
package cloudemu

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Cloud names, as in the device document.
const (
	Aliyun  = "aliyun"
	Tencent = "tencent"
	Huawei  = "huawei"
	Azure   = "azure"
	OneNET  = "onenet"
	Baidu   = "baidu"
	Tuya    = "tuya"
	// TuyaLegacy is Tuya's older device protocol (tuya-connect-kit).
	TuyaLegacy = "tuyalegacy"
	JWT        = "jwt"
	AWS        = "aws"
)

// Options configures an Emulator.
type Options struct {
	// Cloud is one of Aliyun, Tencent, Huawei, Azure, OneNET, Baidu, Tuya,
	// TuyaLegacy, JWT, AWS.
	Cloud string
	// JWKS is the token issuer's JSON Web Key Set (jwt, aws).
	JWKS []byte
	// JWKSURL is where to fetch the JWKS when JWKS is nil: an http(s) URL
	// (credsign's /.well-known/jwks.json) or a file path. It is fetched
	// again when a token names a key id the cached set lacks.
	JWKSURL string
	// Issuer, when set, is the iss claim tokens must carry (jwt, aws).
	Issuer string
	// Audience, when set, is an aud claim jwt tokens must carry.
	Audience string
	// JWTFrom is the CONNECT field a jwt broker reads the token from:
	// "password" (the default, EMQX's default "from") or "username" (EMQX
	// with from = username; mosquitto-go-auth always).
	JWTFrom string
	// GoAuthSecret, when set, makes the jwt broker check tokens as
	// mosquitto-go-auth's JWT backend in local mode does with
	// auth_opt_jwt_secret set to it, instead of against the JWKS (see
	// verifyGoAuthLocal); JWTFrom is then "username" whatever it says.
	GoAuthSecret []byte
	// Addr is the address to listen on; default 127.0.0.1:0.
	Addr string
	// TLS makes the listener speak TLS with a certificate from CA.
	TLS bool
	// CA signs the listener's certificate; generated when nil and TLS is set.
	CA *TestCA
	// Hosts are extra names the certificate is valid for (localhost,
	// 127.0.0.1 and ::1 always are).
	Hosts []string
	// Now is the emulator's clock; default time.Now.
	Now func() time.Time
	// ExpiryCheckInterval is how often connected clients are checked for an
	// expired token (Azure, jwt, aws); default 100ms.
	ExpiryCheckInterval time.Duration
	// Logger receives connection events (never a password); default discards.
	Logger *slog.Logger
}

// Attempt records one CONNECT the emulator answered.
type Attempt struct {
	ClientID string
	Username string
	// Err is nil when the CONNECT was accepted.
	Err error
	At  time.Time
}

// Message is a PUBLISH the broker received from a client.
type Message struct {
	ClientID string
	Topic    string
	Payload  []byte
	QoS      byte
}

// State is a snapshot of what the emulator has seen.
type State struct {
	Attempts  []Attempt
	Messages  []Message
	Connected []string // client ids with a live session
	Expired   int      // sessions dropped because their token lapsed
}

// Emulator is an MQTT broker that authenticates one cloud's devices.
type Emulator struct {
	opts Options
	ca   *TestCA
	tls  *tls.Config
	addr string // bound address, fixed after the first start

	mu        sync.Mutex
	secrets   map[string]string
	jwks      *jose.JSONWebKeySet // cached key set (jwt, aws)
	server    *mqtt.Server
	listener  *gatedListener
	connected map[*mqtt.Client]time.Time // live sessions and when they expire (zero: never)
	state     State
	changed   chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
}

// Start creates an emulator and starts its listener.
func Start(opts Options) (*Emulator, error) {
	switch opts.Cloud {
	case Aliyun, Tencent, Huawei, Azure, OneNET, Baidu, Tuya, TuyaLegacy:
	case JWT, AWS:
		if opts.JWKS == nil && opts.JWKSURL == "" && (opts.Cloud != JWT || opts.GoAuthSecret == nil) {
			return nil, fmt.Errorf("cloudemu: %s needs the issuer's JWKS (Options.JWKS or JWKSURL)", opts.Cloud)
		}
	default:
		return nil, fmt.Errorf("cloudemu: unknown cloud %q", opts.Cloud)
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ExpiryCheckInterval <= 0 {
		opts.ExpiryCheckInterval = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &Emulator{opts: opts, addr: opts.Addr, secrets: map[string]string{}, changed: make(chan struct{})}
	if opts.TLS {
		e.ca = opts.CA
		if e.ca == nil {
			ca, err := NewTestCA()
			if err != nil {
				return nil, fmt.Errorf("cloudemu: %w", err)
			}
			e.ca = ca
		}
		cfg, err := e.ca.ServerConfig(opts.Hosts...)
		if err != nil {
			return nil, fmt.Errorf("cloudemu: %w", err)
		}
		if opts.Cloud == AWS {
			requireALPN(cfg, "mqtt")
		}
		e.tls = cfg
	}
	if err := e.start(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Emulator) start() error {
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: e.opts.Logger})
	if err := srv.AddHook(&authHook{e: e}, nil); err != nil {
		return fmt.Errorf("cloudemu: add hook: %w", err)
	}
	// The socket is bound here and served as it is, so that the address
	// (and port) is known and kept on restart; binding a free port, closing
	// it and binding again let another test take it in between.
	ln, err := net.Listen("tcp", e.addr)
	if err != nil {
		return fmt.Errorf("cloudemu: listen on %s: %w", e.addr, err)
	}
	e.addr = ln.Addr().String()
	if e.tls != nil {
		ln = tls.NewListener(ln, e.tls)
	}
	l := &gatedListener{Net: listeners.NewNet("emu", ln), clients: &srv.Listeners.ClientsWg, srv: srv}
	if err := srv.AddListener(l); err != nil {
		return fmt.Errorf("cloudemu: listen on %s: %w", e.addr, err)
	}
	if err := srv.Serve(); err != nil {
		return fmt.Errorf("cloudemu: serve: %w", err)
	}
	stop := make(chan struct{})
	e.mu.Lock()
	e.server, e.listener, e.stop, e.connected = srv, l, stop, map[*mqtt.Client]time.Time{}
	e.mu.Unlock()
	e.wg.Add(1)
	go e.expiryLoop(stop)
	return nil
}

// AddDevice registers a device by its device-document params (aliyun:
// productKey, deviceName; tencent: productId, deviceName; huawei: deviceId;
// azure: hubHost, deviceId, optional moduleId, or hubHost and policyName for
// a shared-access policy key; onenet: productId, deviceName, optional
// keyScope=product for a product key; baidu: iotCoreId, deviceKey; tuya,
// tuyalegacy: deviceId; jwt: deviceId (the token subject), optional clientId; aws:
// authorizerName, clientId, optional tokenKeyName and endpoint) and the
// secret the emulator accepts for it (jwt: none; aws: the authorizer's
// token-signing key, public or private, PEM).
func (e *Emulator) AddDevice(params map[string]string, secret string) error {
	entries, err := deviceEntries(e.opts.Cloud, params, secret)
	if err != nil {
		return fmt.Errorf("cloudemu: add device: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range entries {
		e.secrets[k] = v
	}
	return nil
}

// deviceEntries returns the lookup entries a device adds.
func deviceEntries(cloud string, p map[string]string, secret string) (map[string]string, error) {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	switch cloud {
	case JWT:
		sub := or(p["deviceId"], p["clientId"])
		if sub == "" {
			return nil, fmt.Errorf("jwt device needs param \"deviceId\"")
		}
		return map[string]string{"jwt/" + sub: or(p["clientId"], sub)}, nil
	case AWS:
		name, id := p["authorizerName"], or(p["clientId"], p["deviceId"])
		if name == "" || id == "" {
			return nil, fmt.Errorf("aws device needs params \"authorizerName\" and \"clientId\"")
		}
		if _, err := rsaPublicKey(secret); err != nil {
			return nil, err
		}
		return map[string]string{
			"authorizers/" + name:                   secret,
			"authorizers/" + name + "/tokenKeyName": or(p["tokenKeyName"], "token"),
			"authorizers/" + name + "/endpoint":     p["endpoint"],
			"jwt/" + id:                             id,
		}, nil
	}
	key, err := identityKey(cloud, p)
	if err != nil {
		return nil, err
	}
	return map[string]string{key: secret}, nil
}

func identityKey(cloud string, p map[string]string) (string, error) {
	need := func(names ...string) error {
		for _, n := range names {
			if p[n] == "" {
				return fmt.Errorf("%s device needs param %q", cloud, n)
			}
		}
		return nil
	}
	switch cloud {
	case Aliyun:
		return p["productKey"] + "/" + p["deviceName"], need("productKey", "deviceName")
	case Tencent:
		return p["productId"] + p["deviceName"], need("productId", "deviceName")
	case Huawei:
		return p["deviceId"], need("deviceId")
	case Azure:
		if p["policyName"] != "" {
			return p["hubHost"] + "/policies/" + p["policyName"], need("hubHost")
		}
		return azureKey(p["hubHost"], p["deviceId"], p["moduleId"]), need("hubHost", "deviceId")
	case OneNET:
		if p["keyScope"] == "product" {
			return "products/" + p["productId"], need("productId")
		}
		return "products/" + p["productId"] + "/devices/" + p["deviceName"], need("productId", "deviceName")
	case Baidu:
		return p["iotCoreId"] + "/" + p["deviceKey"], need("iotCoreId", "deviceKey")
	case Tuya, TuyaLegacy:
		return p["deviceId"], need("deviceId")
	}
	return "", fmt.Errorf("unknown cloud %q", cloud)
}

// Addr returns the host:port the broker listens on.
func (e *Emulator) Addr() string { return e.addr }

// Host returns the IP address the broker listens on.
func (e *Emulator) Host() string {
	h, _, _ := net.SplitHostPort(e.addr)
	return h
}

// Port returns the TCP port the broker listens on.
func (e *Emulator) Port() int {
	_, p, _ := net.SplitHostPort(e.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// TLS reports whether the listener speaks TLS.
func (e *Emulator) TLS() bool { return e.tls != nil }

// CAPEM returns the PEM of the CA that signed the listener's certificate, or
// nil for a plain listener.
func (e *Emulator) CAPEM() []byte {
	if e.ca == nil {
		return nil
	}
	return e.ca.CertPEM()
}

// Snapshot returns a copy of what the emulator has seen.
func (e *Emulator) Snapshot() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snapshotLocked()
}

// AttemptsSince counts the CONNECTs made at or after since: how many the
// broker refused and how many it accepted.
func (e *Emulator) AttemptsSince(since time.Time) (refused, accepted int) {
	for _, at := range e.Snapshot().Attempts {
		switch {
		case at.At.Before(since):
		case at.Err != nil:
			refused++
		default:
			accepted++
		}
	}
	return refused, accepted
}

func (e *Emulator) snapshotLocked() State {
	s := State{
		Attempts: append([]Attempt(nil), e.state.Attempts...),
		Messages: append([]Message(nil), e.state.Messages...),
		Expired:  e.state.Expired,
	}
	for cl := range e.connected {
		s.Connected = append(s.Connected, cl.ID)
	}
	return s
}

// Wait blocks until cond holds for the emulator's state or ctx is done.
func (e *Emulator) Wait(ctx context.Context, cond func(State) bool) (State, error) {
	for {
		e.mu.Lock()
		s, ch := e.snapshotLocked(), e.changed
		e.mu.Unlock()
		if cond(s) {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s, fmt.Errorf("cloudemu: waiting: %w", context.Cause(ctx))
		}
	}
}

// notifyLocked wakes every Wait; e.mu must be held.
func (e *Emulator) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// Publish sends a message to subscribed devices, as the cloud would.
func (e *Emulator) Publish(topic string, payload []byte, qos byte) error {
	e.mu.Lock()
	srv := e.server
	e.mu.Unlock()
	if srv == nil {
		return errors.New("cloudemu: publish: broker is stopped")
	}
	if err := srv.Publish(topic, payload, false, qos); err != nil {
		return fmt.Errorf("cloudemu: publish to %s: %w", topic, err)
	}
	return nil
}

// Stop closes the broker and drops every client; Restart starts it again.
func (e *Emulator) Stop() error {
	e.mu.Lock()
	srv, l, stop := e.server, e.listener, e.stop
	e.server, e.listener, e.stop = nil, nil, nil
	e.mu.Unlock()
	if srv == nil {
		return nil
	}
	close(stop)
	l.shut()
	err := srv.Close()
	e.wg.Wait()
	if err != nil {
		return fmt.Errorf("cloudemu: close broker: %w", err)
	}
	return nil
}

// Restart stops the broker and starts a new one on the same address, with
// the same devices; sessions are lost, as on a real broker restart.
func (e *Emulator) Restart() error {
	if err := e.Stop(); err != nil {
		return err
	}
	return e.start()
}

// Close stops the broker for good.
func (e *Emulator) Close() error { return e.Stop() }

// CheckExpiry drops every connected client whose token has lapsed by the
// emulator's clock and returns how many it dropped. It runs on its own every
// ExpiryCheckInterval.
func (e *Emulator) CheckExpiry() int {
	now := e.opts.Now()
	var drop []*mqtt.Client
	e.mu.Lock()
	for cl, exp := range e.connected {
		if !exp.IsZero() && !now.Before(exp) {
			drop = append(drop, cl)
			delete(e.connected, cl)
			e.state.Expired++
		}
	}
	if len(drop) > 0 {
		e.notifyLocked()
	}
	e.mu.Unlock()
	for _, cl := range drop {
		e.opts.Logger.Info("token expired, dropping client", "client", cl.ID)
		// Azure closes the connection; MQTT 3.1.1 has no server DISCONNECT.
		cl.Stop(ErrExpired)
	}
	return len(drop)
}

func (e *Emulator) expiryLoop(stop <-chan struct{}) {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.ExpiryCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			e.CheckExpiry()
		}
	}
}

// verify checks a CONNECT by the emulator's cloud recipe.
func (e *Emulator) verify(clientID, username, password string) (verdict, error) {
	find := func(key string) (string, bool) {
		e.mu.Lock()
		defer e.mu.Unlock()
		s, ok := e.secrets[key]
		return s, ok
	}
	now := e.opts.Now()
	switch e.opts.Cloud {
	case Aliyun:
		return verifyAliyun(clientID, username, password, e.TLS(), find)
	case Tencent:
		return verifyTencent(clientID, username, password, now, find)
	case Huawei:
		return verifyHuawei(clientID, username, password, now, find)
	case OneNET:
		return verifyOneNET(clientID, username, password, now, find)
	case Baidu:
		return verifyBaidu(username, password, now, find)
	case Tuya:
		return verifyTuya(clientID, username, password, find)
	case TuyaLegacy:
		return verifyTuyaLegacy(clientID, username, password, find)
	case JWT:
		if e.opts.GoAuthSecret != nil {
			return verifyGoAuthLocal(username, e.opts.GoAuthSecret, now, find)
		}
		token := password
		if e.opts.JWTFrom == "username" {
			token = username
		}
		return e.verifyToken(clientID, token, "", now, find)
	case AWS:
		return e.verifyAWS(clientID, username, e.TLS(), now, find)
	default:
		return verifyAzure(clientID, username, password, e.TLS(), now, find)
	}
}

// authHook is the mochi hook that authenticates CONNECTs and records traffic.
type authHook struct {
	mqtt.HookBase
	e *Emulator
}

func (h *authHook) ID() string { return "cloudemu-" + h.e.opts.Cloud }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnPublished, mqtt.OnPacketRead,
	}, []byte{b})
}

// sysEscape hides a leading "$sys/" from mochi. OneNET's device topics
// start with "$sys/" (docs/clouds.md), which mochi v2.7.9 compares with
// "$SYS" regardless of case and drops without an acknowledgement
// (IsValidFilter), so OneNET devices could never publish; the prefix is
// taken off again where the message is recorded.
const sysEscape = "cloudemu-escaped:"

// OnPacketRead escapes the topic of a device's PUBLISH to a "$sys/" topic
// (not "$SYS/", which stays refused).
func (h *authHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && !cl.Net.Inline && strings.HasPrefix(pk.TopicName, "$sys/") {
		pk.TopicName = sysEscape + pk.TopicName
	}
	return pk, nil
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	e := h.e
	v, err := e.verify(pk.Connect.ClientIdentifier, string(pk.Connect.Username), string(pk.Connect.Password))
	e.mu.Lock()
	e.state.Attempts = append(e.state.Attempts, Attempt{
		ClientID: pk.Connect.ClientIdentifier, Username: string(pk.Connect.Username), Err: err, At: e.opts.Now(),
	})
	if err == nil {
		e.connected[cl] = v.expires
	}
	e.notifyLocked()
	e.mu.Unlock()
	if err != nil {
		e.opts.Logger.Info("CONNECT refused", "client", pk.Connect.ClientIdentifier, "reason", err)
		return false
	}
	e.opts.Logger.Info("CONNECT accepted", "client", pk.Connect.ClientIdentifier)
	return true
}

func (h *authHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *authHook) OnSessionEstablished(*mqtt.Client, packets.Packet) {
	h.e.mu.Lock()
	h.e.notifyLocked()
	h.e.mu.Unlock()
}

func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.e.mu.Lock()
	if _, ok := h.e.connected[cl]; ok {
		delete(h.e.connected, cl)
		h.e.notifyLocked()
	}
	h.e.mu.Unlock()
}

func (h *authHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.e.mu.Lock()
	h.e.state.Messages = append(h.e.state.Messages, Message{
		ClientID: cl.ID, Topic: strings.TrimPrefix(pk.TopicName, sysEscape), Payload: append([]byte(nil), pk.Payload...), QoS: pk.FixedHeader.Qos,
	})
	h.e.notifyLocked()
	h.e.mu.Unlock()
	h.e.opts.Logger.Info("message", "client", cl.ID, "topic", strings.TrimPrefix(pk.TopicName, sysEscape), "qos", pk.FixedHeader.Qos, "payload", string(pk.Payload))
}

// gatedListener is mochi's listener over a bound socket with a gate in
// front of each new connection. It works around a race in mochi v2.7.9: attaching a client
// calls Listeners.ClientsWg.Add(1) while Server.Close may already be in
// ClientsWg.Wait (seen under -race when an agent reconnects as a test ends).
// The gate adds to that WaitGroup itself, under a lock that Stop takes
// before Close, so no connection is admitted once shutdown has begun and the
// counter is never zero while an admitted one attaches.
type gatedListener struct {
	*listeners.Net
	clients *sync.WaitGroup
	srv     *mqtt.Server

	mu      sync.Mutex
	closing bool
}

// Serve serves connections through the gate.
func (g *gatedListener) Serve(establish listeners.EstablishFn) {
	g.Net.Serve(func(id string, c net.Conn) error {
		g.mu.Lock()
		if g.closing {
			g.mu.Unlock()
			return c.Close()
		}
		g.clients.Add(1)
		g.mu.Unlock()
		defer g.clients.Done()
		return establish(id, c)
	})
}

// Close closes the listener and disconnects its clients. It stands in for
// mochi v2.7.9's closeListenerClients, whose Clients.GetByListener takes the
// client list's read lock twice (RLock, then Len's RLock): a client that
// disconnects in between waits in Clients.Delete for the write lock, which
// blocks the second RLock, and Server.Close deadlocks (seen under -race when
// an agent stops as a test ends). GetAll read-locks once.
func (g *gatedListener) Close(listeners.CloseFn) {
	g.Net.Close(func(id string) {
		for _, cl := range g.srv.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Closed() {
				_ = g.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
}

// shut closes the gate: connections accepted from now on are dropped.
func (g *gatedListener) shut() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
}

// requireALPN makes cfg refuse TLS clients that do not offer proto, as AWS
// IoT Core does for MQTT with custom authentication on port 443.
func requireALPN(cfg *tls.Config, proto string) {
	cfg.NextProtos = []string{proto}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		for _, p := range hello.SupportedProtos {
			if p == proto {
				return nil, nil
			}
		}
		return nil, fmt.Errorf("cloudemu: client offered ALPN %q, AWS IoT needs %q on this port", hello.SupportedProtos, proto)
	}
}
