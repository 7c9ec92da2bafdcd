package clouds_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/azure"
	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/emutest"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// Microsoft's published group enrollment derivation vector ("How to
// provision devices using symmetric key enrollment groups",
// learn.microsoft.com/azure/iot-dps/how-to-legacy-device-symm-key; also in
// docs/clouds.md and cloud/azure/derive_test.go).
const (
	msGroupKey  = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	msRegID     = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	msDeviceKey = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
)

const (
	otherGroupKey = "dGhpcyBpcyBub3QgdGhlIGdyb3VwIGtleSB5b3UgYXJlIGxvb2tpbmcgZm9y"
	scope         = "0ne00ABC123"
	hub           = "credsign-hub.azure-devices.net"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// clientFor is a Client that trusts the emulator's CA, with short waits,
// allowed to call the emulators on loopback.
func clientFor(h *http.Client) *Client {
	return &Client{Kinds: reg.RegistrationKinds(), HTTP: h, Backoff: 20 * time.Millisecond, PollInterval: 50 * time.Millisecond, AllowPrivate: true, AllowHosts: []string{"127.0.0.1"}}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func startDPS(t *testing.T, opts cloudemu.DPSOptions, groups ...cloudemu.DPSGroup) *cloudemu.DPS {
	t.Helper()
	opts.IDScope = scope
	d, err := cloudemu.StartDPS(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	for _, g := range groups {
		if err := d.AddGroup(g); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// noLeak fails when err's text holds any of the secrets.
func noLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error text contains a secret: %v", err)
		}
	}
}

// dpsSecrets are the strings no DPS error may contain: the group key, the
// derived key and signatures a request could carry.
func dpsSecrets(t *testing.T, groupKey, regID string) []string {
	dk, err := azure.DeriveGroupKey(groupKey, regID)
	if err != nil {
		t.Fatal(err)
	}
	return []string{groupKey, dk, "SharedAccessSignature", "sig="}
}

func TestDPSRegister(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		opts     cloudemu.DPSOptions
		group    cloudemu.DPSGroup
		key      string
		faults   []cloudemu.Fault
		clock    time.Duration // client clock offset
		want     error         // nil: assigned
		minTime  time.Duration // the call takes at least this long
		requests int           // HTTP requests the emulator answered
	}{
		{name: "assigned after one assigning poll, Retry-After honoured", group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub},
			key: msGroupKey, minTime: 2 * time.Second, requests: 3},
		{name: "assigned at once", opts: cloudemu.DPSOptions{AssigningPolls: -1}, group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub},
			key: msGroupKey, requests: 1},
		{name: "no Retry-After: the client's poll interval", opts: cloudemu.DPSOptions{RetryAfter: -1, AssigningPolls: 3}, group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub},
			key: msGroupKey, minTime: 200 * time.Millisecond, requests: 5},
		{name: "wrong group key", group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub}, key: otherGroupKey, want: ErrRefused, requests: 1},
		{name: "SAS expired by the client's clock", group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub}, key: msGroupKey,
			clock: -2 * time.Hour, want: ErrRefused, requests: 1},
		{name: "assignment failed", opts: cloudemu.DPSOptions{RetryAfter: -1}, group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub, Outcome: "failed"},
			key: msGroupKey, want: ErrRefused, requests: 3},
		{name: "enrollment disabled", opts: cloudemu.DPSOptions{AssigningPolls: -1}, group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub, Outcome: "disabled"},
			key: msGroupKey, want: ErrRefused, requests: 1},
		{name: "503 then assigned", opts: cloudemu.DPSOptions{AssigningPolls: -1}, group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub},
			key: msGroupKey, faults: []cloudemu.Fault{{Status: 503}}, requests: 2},
		{name: "429 with Retry-After then assigned", opts: cloudemu.DPSOptions{AssigningPolls: -1}, group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub},
			key: msGroupKey, faults: []cloudemu.Fault{{Status: 429, RetryAfter: "1"}}, minTime: time.Second, requests: 2},
		{name: "5xx on every try", opts: cloudemu.DPSOptions{AssigningPolls: -1}, group: cloudemu.DPSGroup{Key: msGroupKey, Hub: hub},
			key: msGroupKey, faults: []cloudemu.Fault{{Status: 500}, {Status: 502}, {Status: 503}}, want: ErrUnavailable, requests: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := startDPS(t, tc.opts, tc.group)
			d.InjectFaults(tc.faults...)
			c := clientFor(d.Client())
			c.Now = func() time.Time { return time.Now().Add(tc.clock) }
			start := time.Now()
			res, err := c.Register(ctxT(t, 30*time.Second), Request{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope, "host": d.Addr()}, GroupSecret: tc.key, DeviceID: msRegID})
			took := time.Since(start)
			noLeak(t, err, dpsSecrets(t, tc.key, msRegID)...)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if d.Registrations() != 0 && tc.group.Outcome == "" {
					t.Fatalf("emulator accepted %d registrations", d.Registrations())
				}
			} else {
				if err != nil {
					t.Fatalf("register: %v", err)
				}
				if res.Params["hubHost"] != hub || res.Params["deviceId"] != msRegID || res.Secret != "" {
					t.Fatalf("result = %+v", res)
				}
				dev, ok := d.Device(msRegID)
				if !ok || dev.Key != msDeviceKey {
					t.Fatalf("emulator derived %q, Microsoft's vector is %q", dev.Key, msDeviceKey)
				}
			}
			if took < tc.minTime {
				t.Fatalf("took %v, want at least %v", took, tc.minTime)
			}
			if n := len(d.Requests()); n != tc.requests {
				t.Fatalf("emulator answered %d requests, want %d: %+v", n, tc.requests, d.Requests())
			}
			if d.EarlyPolls() != 0 {
				t.Fatalf("%d polls came before Retry-After", d.EarlyPolls())
			}
		})
	}
}

func TestDPSRetryAfterHonouredBetweenPolls(t *testing.T) {
	t.Parallel()
	d := startDPS(t, cloudemu.DPSOptions{RetryAfter: 1, AssigningPolls: 1}, cloudemu.DPSGroup{Key: msGroupKey, Hub: hub})
	if _, err := clientFor(d.Client()).Register(ctxT(t, 30*time.Second), Request{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope, "host": d.Addr()}, GroupSecret: msGroupKey, DeviceID: "dev-1"}); err != nil {
		t.Fatal(err)
	}
	reqs := d.Requests()
	if len(reqs) != 3 || reqs[0].Method != http.MethodPut || reqs[1].Method != http.MethodGet {
		t.Fatalf("requests = %+v", reqs)
	}
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].At.Sub(reqs[i-1].At); gap < time.Second {
			t.Fatalf("request %d came %v after the previous one; Retry-After was 1s", i, gap)
		}
	}
}

func TestDPSUnavailable(t *testing.T) {
	t.Parallel()
	d := startDPS(t, cloudemu.DPSOptions{AssigningPolls: 1000, RetryAfter: -1}, cloudemu.DPSGroup{Key: msGroupKey, Hub: hub})
	other, err := cloudemu.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	untrusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: other.Pool(), MinVersion: tls.VersionTLS12}}}
	cases := []struct {
		name    string
		client  *Client
		host    string
		timeout time.Duration
	}{
		{name: "unreachable", client: clientFor(d.Client()), host: closedAddr(t), timeout: 10 * time.Second},
		{name: "untrusted certificate", client: clientFor(untrusting), host: d.Addr(), timeout: 10 * time.Second},
		{name: "context deadline while assigning", client: clientFor(d.Client()), host: d.Addr(), timeout: 700 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := tc.client.Register(ctxT(t, tc.timeout), Request{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope, "host": tc.host}, GroupSecret: msGroupKey, DeviceID: "dev-" + strings.ReplaceAll(tc.name, " ", "-")})
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			noLeak(t, err, dpsSecrets(t, msGroupKey, "dev-"+strings.ReplaceAll(tc.name, " ", "-"))...)
			if took := time.Since(start); took > tc.timeout+2*time.Second {
				t.Fatalf("took %v past a %v deadline", took, tc.timeout)
			}
		})
	}
}

// TestDPSDeviceSignsIntoHub is the end-to-end check: a device registered
// through the DPS emulator signs, with the key credsign derives from the
// group key, hub credentials that the Azure MQTT emulator accepts for the
// hub and device id DPS assigned. The hub knows the device by the key the
// DPS emulator derived on its own.
func TestDPSDeviceSignsIntoHub(t *testing.T) {
	t.Parallel()
	d := startDPS(t, cloudemu.DPSOptions{}, cloudemu.DPSGroup{Key: otherGroupKey, Hub: "other-hub.azure-devices.net"}, cloudemu.DPSGroup{Key: msGroupKey, Hub: hub})
	const regID = "thermostat-0042"
	res, err := clientFor(d.Client()).Register(ctxT(t, 30*time.Second), Request{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope, "host": d.Addr()}, GroupSecret: msGroupKey, DeviceID: regID})
	if err != nil {
		t.Fatal(err)
	}
	dev, ok := d.Device(regID)
	if !ok {
		t.Fatal("DPS emulator has no device")
	}
	broker, err := cloudemu.Start(cloudemu.Options{Cloud: cloudemu.Azure, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	if err := broker.AddDevice(map[string]string{"hubHost": dev.Hub, "deviceId": dev.DeviceID}, dev.Key); err != nil {
		t.Fatal(err)
	}
	key, err := azure.DeriveGroupKey(msGroupKey, regID)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := reg.Sign(cloud.Request{Cloud: "azure", Params: res.Params, Secret: key, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if creds.Host != hub {
		t.Fatalf("credentials for host %q, DPS assigned %q", creds.Host, hub)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(broker.CAPEM())
	connect := func(c cloud.Credentials) error {
		o := paho.NewClientOptions().AddBroker("ssl://" + broker.Addr()).SetClientID(c.ClientID).SetUsername(c.Username).SetPassword(c.Password).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
			SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
		cl := paho.NewClient(o)
		tok := cl.Connect()
		if !tok.WaitTimeout(20 * time.Second) {
			return errors.New("connect timed out")
		}
		if tok.Error() == nil {
			t.Cleanup(func() { cl.Disconnect(0) })
		}
		return tok.Error()
	}
	if err := connect(creds); err != nil {
		t.Fatalf("hub refused the registered device: %v", err)
	}
	if refused, accepted := broker.AttemptsSince(time.Time{}); refused != 0 || accepted != 1 {
		t.Fatalf("hub: %d refused, %d accepted", refused, accepted)
	}
	// A key derived from the wrong group does not get in.
	wrong, _ := azure.DeriveGroupKey(otherGroupKey, regID)
	bad, err := reg.Sign(cloud.Request{Cloud: "azure", Params: res.Params, Secret: wrong, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(bad); err == nil {
		t.Fatal("hub accepted a key derived from another group")
	}
}

func startAliyun(t *testing.T) *cloudemu.AliyunDynReg {
	t.Helper()
	a, err := cloudemu.StartAliyunDynReg(cloudemu.AliyunDynRegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	a.AddProduct("a1pk0000001", "ps-aliyun-product-secret-1")
	a.AddDevice("a1pk0000001", "sensor-1", "ds-issued-by-aliyun-1")
	return a
}

func TestAliyunRegister(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		params   map[string]string
		secret   string
		device   string
		faults   []cloudemu.Fault
		want     error
		requests int
	}{
		{name: "hmacsha256 (default)", params: map[string]string{}, secret: "ps-aliyun-product-secret-1", device: "sensor-1", requests: 1},
		{name: "hmacsha1", params: map[string]string{"signMethod": "hmacsha1"}, secret: "ps-aliyun-product-secret-1", device: "sensor-1", requests: 1},
		{name: "hmacmd5", params: map[string]string{"signMethod": "hmacmd5"}, secret: "ps-aliyun-product-secret-1", device: "sensor-1", requests: 1},
		{name: "device name from params", params: map[string]string{"deviceName": "sensor-1"}, secret: "ps-aliyun-product-secret-1", device: "ignored", requests: 1},
		{name: "device name template", params: map[string]string{"deviceName": "sensor-{deviceId}"}, secret: "ps-aliyun-product-secret-1", device: "1", requests: 1},
		{name: "wrong product secret", params: map[string]string{}, secret: "not-the-product-secret", device: "sensor-1", want: ErrRefused, requests: 1},
		{name: "device not pre-registered", params: map[string]string{}, secret: "ps-aliyun-product-secret-1", device: "sensor-9", want: ErrRefused, requests: 1},
		{name: "unknown product", params: map[string]string{"productKey": "a1nope"}, secret: "ps-aliyun-product-secret-1", device: "sensor-1", want: ErrRefused, requests: 1},
		{name: "503 then registered", params: map[string]string{}, secret: "ps-aliyun-product-secret-1", device: "sensor-1", faults: []cloudemu.Fault{{Status: 503, RetryAfter: "0"}}, requests: 2},
		{name: "5xx on every try", params: map[string]string{}, secret: "ps-aliyun-product-secret-1", device: "sensor-1", faults: []cloudemu.Fault{{Status: 500}, {Status: 500}, {Status: 500}}, want: ErrUnavailable, requests: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := startAliyun(t)
			a.InjectFaults(tc.faults...)
			p := map[string]string{"productKey": "a1pk0000001", "host": a.Addr()}
			for k, v := range tc.params {
				p[k] = v
			}
			res, err := clientFor(a.Client()).Register(ctxT(t, 30*time.Second), Request{Kind: KindAliyunDynamic, Params: p, GroupSecret: tc.secret, DeviceID: tc.device})
			noLeak(t, err, tc.secret)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if a.Registrations() != 0 {
					t.Fatal("emulator counted a registration")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if res.Secret != "ds-issued-by-aliyun-1" || res.Params["productKey"] != "a1pk0000001" || res.Params["deviceName"] != "sensor-1" {
					t.Fatalf("result = %+v", res)
				}
				if a.Registrations() != 1 {
					t.Fatalf("emulator counted %d registrations", a.Registrations())
				}
			}
			if n := len(a.Requests()); n != tc.requests {
				t.Fatalf("emulator answered %d requests, want %d", n, tc.requests)
			}
		})
	}
}

func startTencent(t *testing.T) *cloudemu.TencentDynReg {
	t.Helper()
	e, err := cloudemu.StartTencentDynReg(cloudemu.TencentDynRegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	e.AddProduct("ABCDEFGHIJ", "tc-product-secret-0123456789")
	e.AddDevice("ABCDEFGHIJ", "pump-7", "cHNrLWlzc3VlZC1ieS10ZW5jZW50")
	return e
}

func TestTencentRegister(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		secret   string
		device   string
		clock    time.Duration
		faults   []cloudemu.Fault
		want     error
		requests int
	}{
		{name: "registered", secret: "tc-product-secret-0123456789", device: "pump-7", requests: 1},
		{name: "wrong product secret", secret: "tc-wrong-secret-0123456789", device: "pump-7", want: ErrRefused, requests: 1},
		{name: "device not pre-created", secret: "tc-product-secret-0123456789", device: "pump-8", want: ErrRefused, requests: 1},
		{name: "client clock 10 minutes off", secret: "tc-product-secret-0123456789", device: "pump-7", clock: 10 * time.Minute, want: ErrRefused, requests: 1},
		{name: "500 then registered", secret: "tc-product-secret-0123456789", device: "pump-7", faults: []cloudemu.Fault{{Status: 500}}, requests: 2},
		{name: "429 on every try", secret: "tc-product-secret-0123456789", device: "pump-7", faults: []cloudemu.Fault{{Status: 429, RetryAfter: "0"}, {Status: 429}, {Status: 429}}, want: ErrUnavailable, requests: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := startTencent(t)
			e.InjectFaults(tc.faults...)
			c := clientFor(e.Client())
			c.Now = func() time.Time { return time.Now().Add(tc.clock) }
			res, err := c.Register(ctxT(t, 30*time.Second), Request{Kind: KindTencentDynamic, Params: map[string]string{"productId": "ABCDEFGHIJ", "host": e.Addr()}, GroupSecret: tc.secret, DeviceID: tc.device})
			noLeak(t, err, tc.secret)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if res.Secret != "cHNrLWlzc3VlZC1ieS10ZW5jZW50" || res.Params["productId"] != "ABCDEFGHIJ" || res.Params["deviceName"] != "pump-7" {
					t.Fatalf("result = %+v", res)
				}
			}
			if n := len(e.Requests()); n != tc.requests {
				t.Fatalf("emulator answered %d requests, want %d", n, tc.requests)
			}
		})
	}
}

func TestUnreachableDynamic(t *testing.T) {
	t.Parallel()
	c := &Client{Kinds: reg.RegistrationKinds(), Backoff: time.Millisecond, AllowPrivate: true, AllowHosts: []string{"127.0.0.1"}}
	for _, r := range []Request{
		{Kind: KindAliyunDynamic, Params: map[string]string{"productKey": "pk", "host": closedAddr(t)}, GroupSecret: "product-secret-123", DeviceID: "d"},
		{Kind: KindTencentDynamic, Params: map[string]string{"productId": "P", "host": closedAddr(t)}, GroupSecret: "product-secret-123", DeviceID: "d"},
	} {
		_, err := c.Register(ctxT(t, 10*time.Second), r)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: err = %v, want ErrUnavailable", r.Kind, err)
		}
		noLeak(t, err, r.GroupSecret)
	}
}

// TestErrorsWithholdEchoedSecrets: a misbehaving server (a fake: no real
// cloud echoes credentials) copies the request's Authorization, signature
// headers and body into every field of its error answers; no error text
// may carry them.
func TestErrorsWithholdEchoedSecrets(t *testing.T) {
	t.Parallel()
	ca, cfg := emutest.LoopbackTLS(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		q := fmt.Sprintf("%q", r.Header.Get("Authorization")+r.Header.Get("X-TC-Signature")+r.PostForm.Get("sign"))
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1)%2 == 0 { // every other answer a 401, the rest 200
			w.WriteHeader(http.StatusUnauthorized)
		}
		fmt.Fprintf(w, `{"errorCode":%s,"trackingId":%s,"message":%s,"code":%s,"status":%s,"operationId":%s,`+
			`"registrationState":{"errorCode":%s,"assignedHub":%s},"Response":{"Error":{"Code":%s,"Message":%s}}}`, q, q, q, q, q, q, q, q, q, q)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}}
	c := clientFor(hc)
	host := ln.Addr().String()
	for _, r := range []Request{
		{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope, "host": host}, GroupSecret: msGroupKey, DeviceID: msRegID},
		{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope, "host": host}, GroupSecret: msGroupKey, DeviceID: msRegID},
		{Kind: KindAliyunDynamic, Params: map[string]string{"productKey": "pk", "host": host, "signMethod": "hmacmd5"}, GroupSecret: "aliyun-product-secret", DeviceID: "d"},
		{Kind: KindAliyunDynamic, Params: map[string]string{"productKey": "pk", "host": host, "signMethod": "hmacmd5"}, GroupSecret: "aliyun-product-secret", DeviceID: "d"},
		{Kind: KindTencentDynamic, Params: map[string]string{"productId": "P", "host": host}, GroupSecret: "tencent-product-secret", DeviceID: "d"},
		{Kind: KindTencentDynamic, Params: map[string]string{"productId": "P", "host": host}, GroupSecret: "tencent-product-secret", DeviceID: "d"},
	} {
		_, err := c.Register(ctxT(t, 10*time.Second), r)
		if err == nil {
			t.Fatalf("%s: no error from an echoing server", r.Kind)
		}
		noLeak(t, err, append(dpsSecrets(t, msGroupKey, msRegID), r.GroupSecret, "%2F", "==")...)
		// The aliyun md5 sign is 32 hex digits: none may appear.
		for _, f := range strings.FieldsFunc(err.Error(), func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) }) {
			if len(f) >= 32 {
				t.Fatalf("%s: error holds a hex run %q: %v", r.Kind, f, err)
			}
		}
	}
}

func TestRegisterInvalid(t *testing.T) {
	t.Parallel()
	c := &Client{Kinds: reg.RegistrationKinds()}
	cases := []struct {
		name string
		r    Request
	}{
		{"unknown kind", Request{Kind: "aws-fleet", GroupSecret: "fleet-claim-secret", DeviceID: "d"}},
		{"missing idScope", Request{Kind: KindAzureDPS, Params: map[string]string{}, GroupSecret: msGroupKey, DeviceID: "d"}},
		{"group key not base64", Request{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope}, GroupSecret: "not base64!", DeviceID: "d"}},
		{"no registration id", Request{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope}, GroupSecret: msGroupKey}},
		{"registration id with a slash", Request{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope}, GroupSecret: msGroupKey, DeviceID: "a/b"}},
		{"tencent secret too short", Request{Kind: KindTencentDynamic, Params: map[string]string{"productId": "P"}, GroupSecret: "short", DeviceID: "d"}},
		{"aliyun no device name", Request{Kind: KindAliyunDynamic, Params: map[string]string{"productKey": "pk"}, GroupSecret: "aliyun-product-secret"}},
		{"host with a path", Request{Kind: KindAliyunDynamic, Params: map[string]string{"productKey": "pk", "host": "evil.example/x"}, GroupSecret: "aliyun-product-secret", DeviceID: "d"}},
	}
	for _, tc := range cases {
		_, err := c.Register(context.Background(), tc.r)
		if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrRefused) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrInvalid only", tc.name, err)
		}
		noLeak(t, err, tc.r.GroupSecret)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		kind   string
		params map[string]string
		fields []string
	}{
		{KindAzureDPS, map[string]string{"idScope": scope}, nil},
		{KindAzureDPS, map[string]string{"idScope": scope, "host": "127.0.0.1:8443", "registrationId": "{deviceId}"}, nil},
		{KindAzureDPS, map[string]string{}, []string{"params.idScope"}},
		{KindAzureDPS, map[string]string{"idScope": scope, "hubHost": "x"}, []string{"params.hubHost"}},
		{KindAzureDPS, map[string]string{"idScope": scope, "host": "https://x"}, []string{"params.host"}},
		{KindAzureDPS, map[string]string{"idScope": scope, "host": "x:99999"}, []string{"params.host"}},
		{KindAliyunDynamic, map[string]string{"productKey": "a1pk", "regionId": "cn-shanghai", "signMethod": "hmacmd5", "deviceName": "dev@1"}, nil},
		{KindAliyunDynamic, map[string]string{"productKey": "a1pk", "regionId": "CN Shanghai"}, []string{"params.regionId"}},
		{KindAliyunDynamic, map[string]string{"productKey": "a1pk", "signMethod": "rsa"}, []string{"params.signMethod"}},
		{KindAliyunDynamic, map[string]string{"deviceName": ""}, []string{"params.productKey", "params.deviceName"}},
		{KindTencentDynamic, map[string]string{"productId": "P1", "host": "ap-guangzhou.gateway.tencentdevices.com"}, nil},
		{KindTencentDynamic, map[string]string{"productId": "bad id"}, []string{"params.productId"}},
		{"nope", nil, []string{"kind"}},
	}
	for _, tc := range cases {
		got := Validate(tc.kind, tc.params)
		var fields []string
		for _, fe := range got {
			fields = append(fields, fe.Field)
		}
		if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("Validate(%s, %v) fields = %v, want %v (%v)", tc.kind, tc.params, fields, tc.fields, got)
		}
	}
	if fe := ValidateSecret(KindAzureDPS, "s3cr3t-not-b64!"); fe == nil || strings.Contains(fe.Reason, "s3cr3t") {
		t.Errorf("ValidateSecret = %v", fe)
	}
	if fe := ValidateSecret(KindAzureDPS, msGroupKey); fe != nil {
		t.Errorf("ValidateSecret(valid) = %v", fe)
	}
}
