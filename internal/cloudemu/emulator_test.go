package cloudemu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/internal/testing/testutil"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// skewClock is real time plus an offset a test can move.
type skewClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *skewClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *skewClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dialCreds connects with credsign's credentials, offering their ALPN.
func dialCreds(t *testing.T, e *Emulator, c cloud.Credentials, lost chan<- error) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().SetClientID(c.ClientID).SetUsername(c.Username).SetPassword(c.Password).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	scheme := "tcp"
	if e.TLS() {
		scheme = "ssl"
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(e.CAPEM())
		cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
		if c.ALPN != "" {
			cfg.NextProtos = []string{c.ALPN}
		}
		o.SetTLSConfig(cfg)
	}
	o.AddBroker(fmt.Sprintf("%s://%s", scheme, e.Addr()))
	if lost != nil {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	}
	cl := paho.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(20 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl, nil
}

// dial connects to e with the triple given, as dialCreds does.
func dial(t *testing.T, e *Emulator, clientID, user, pass string, lost chan<- error) (paho.Client, error) {
	t.Helper()
	return dialCreds(t, e, cloud.Credentials{ClientID: clientID, Username: user, Password: pass}, lost)
}

// refused reports whether a CONNECT was answered "bad user name or password"
// or "not authorized" (mochi answers MQTT 3.1.1 clients with the latter).
func refused(err error) bool {
	return errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised)
}

func TestAzureEmulatorDropsExpiredClient(t *testing.T) {
	clock := &skewClock{}
	e, err := Start(Options{Cloud: Azure, TLS: true, Now: clock.Now, ExpiryCheckInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	const key = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	hub := "hub.azure-devices.net"
	if err := e.AddDevice(map[string]string{"hubHost": hub, "deviceId": "d1"}, key); err != nil {
		t.Fatal(err)
	}
	se := clock.Now().Add(time.Hour).Unix()
	lost := make(chan error, 1)
	c, err := dial(t, e, "d1", hub+"/d1/?api-version=2021-04-12", sasToken(t, key, hub+"/devices/d1", se), lost)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if tok := c.Publish("devices/d1/messages/events/", 1, false, "hello"); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	if _, err := e.Wait(ctxT(t), func(s State) bool { return len(s.Messages) == 1 && string(s.Messages[0].Payload) == "hello" }); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := e.Wait(ctxT(t), func(s State) bool { return s.Expired == 1 && len(s.Connected) == 0 }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-ctxT(t).Done():
		t.Fatal("client was not told its connection was lost")
	}
	// A reconnect with the lapsed token is refused.
	_, err = dial(t, e, "d1", hub+"/d1/?api-version=2021-04-12", sasToken(t, key, hub+"/devices/d1", se), nil)
	if !refused(err) {
		t.Fatalf("reconnect with expired token: %v, want bad user name or password", err)
	}
	if s := e.Snapshot(); !errors.Is(s.Attempts[len(s.Attempts)-1].Err, ErrExpired) {
		t.Fatalf("last attempt error %v, want ErrExpired", s.Attempts[len(s.Attempts)-1].Err)
	}
}

func TestEmulatorRefusesAndRestarts(t *testing.T) {
	tests := []struct {
		cloud, clientID, user, pass, bad string
		params                           map[string]string
		secret                           string
		tls                              bool
	}{
		// Alibaba published vector (docs/clouds.md).
		{Aliyun, "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", "device&pk", "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", "FAFD82A3D602B37FB0FA8B7892F24A477F851A15",
			map[string]string{"productKey": "pk", "deviceName": "device"}, "secret", false},
		// Huawei published vector with F=0 (docs/clouds.md).
		{Huawei, "prod_node1_0_0_2025041401", "prod_node1", "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a", "00",
			map[string]string{"deviceId": "prod_node1"}, "12345678", true},
	}
	for _, tt := range tests {
		t.Run(tt.cloud, func(t *testing.T) {
			e, err := Start(Options{Cloud: tt.cloud, TLS: tt.tls})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close() })
			if err := e.AddDevice(tt.params, tt.secret); err != nil {
				t.Fatal(err)
			}
			if _, err := dial(t, e, tt.clientID, tt.user, tt.bad, nil); !refused(err) {
				t.Fatalf("bad password: %v, want bad user name or password", err)
			}
			lost := make(chan error, 1)
			if _, err := dial(t, e, tt.clientID, tt.user, tt.pass, lost); err != nil {
				t.Fatalf("connect: %v", err)
			}
			port := e.Port()
			if err := e.Restart(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-lost:
			case <-ctxT(t).Done():
				t.Fatal("restart did not drop the client")
			}
			if e.Port() != port {
				t.Fatalf("port changed on restart: %d -> %d", port, e.Port())
			}
			if _, err := dial(t, e, tt.clientID, tt.user, tt.pass, nil); err != nil {
				t.Fatalf("connect after restart: %v", err)
			}
			if got := len(e.Snapshot().Attempts); got != 3 {
				t.Fatalf("attempts = %d, want 3", got)
			}
		})
	}
}

func TestTencentEmulatorRefusesExpiredUsername(t *testing.T) {
	clock := &skewClock{}
	e, err := Start(Options{Cloud: Tencent, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	const psk = "MTIzNDU2Nzg5MGFiY2RlZg=="
	if err := e.AddDevice(map[string]string{"productId": "ABCDEFGHIJ", "deviceName": "lamp"}, psk); err != nil {
		t.Fatal(err)
	}
	user := "ABCDEFGHIJlamp;12010126;abcde;" + strconv.FormatInt(clock.Now().Add(time.Minute).Unix(), 10)
	if _, err := dial(t, e, "ABCDEFGHIJlamp", user, tencentPassword(t, psk, user), nil); err != nil {
		t.Fatalf("connect: %v", err)
	}
	clock.Advance(2 * time.Minute)
	if _, err := dial(t, e, "ABCDEFGHIJlamp", user, tencentPassword(t, psk, user), nil); !refused(err) {
		t.Fatalf("expired username: %v, want refused", err)
	}
}

// TestStopWhileClientsConnect stops and restarts the broker while clients keep
// connecting. Under -race this caught mochi's ClientsWg.Add racing with
// Server.Close's Wait (see gatedTCP); it must also never hang.
func TestStopWhileClientsConnect(t *testing.T) {
	e, err := Start(Options{Cloud: Huawei})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	addr := e.Addr()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var connected atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					connected.Add(1)
					c.Close()
				}
			}
		})
	}
	for range 5 {
		// The broker (restarted) takes connections again.
		last := connected.Load()
		testutil.Eventually(t, 10*time.Second, func() error {
			if connected.Load() < last+4 {
				return errors.New("the broker takes no connections")
			}
			return nil
		})
		done := make(chan error, 1)
		go func() { done <- e.Restart() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("restart: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("restart hung while clients connect")
		}
	}
	close(stop)
	wg.Wait()
}
