package registration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/cloudemu"
)

func TestAddressReason(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr string
		want string // a word of the reason; "" public
	}{
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"169.254.169.254", "link-local"}, // cloud metadata
		{"169.254.0.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf:ffff::1", "link-local"},
		{"10.0.0.1", "private"},
		{"10.255.255.255", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"100.64.0.1", "carrier-grade"},
		{"100.127.255.255", "carrier-grade"},
		{"fc00::1", "unique local"},
		{"fd12:3456::1", "unique local"},
		{"0.0.0.0", "this network"},
		{"0.1.2.3", "this network"},
		{"::", "unspecified"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.1.2.3", "private"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::ffff:0.0.0.0", "this network"},
		{"::127.0.0.1", "reserved"}, // IPv4-compatible (deprecated)
		{"64:ff9b::7f00:1", "NAT64 address of a loopback"},
		{"64:ff9b::a9fe:a9fe", "NAT64 address of a link-local"},
		{"64:ff9b:1::1", "local-use NAT64"},
		{"2002:7f00:1::1", "6to4 address of a loopback"},
		{"2002:c0a8:101::1", "6to4 address of a private"},
		{"2001::1", "IETF"}, // Teredo
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"192.0.0.8", "IETF"},
		{"192.0.2.1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"192.88.99.1", "6to4 relay"},
		{"100::1", "reserved"},
		{"fbff::1", "reserved"},
		// Public: the neighbours of every range, and real endpoints' kind.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"9.255.255.255", ""},
		{"11.0.0.0", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"126.255.255.255", ""},
		{"128.0.0.0", ""},
		{"169.253.255.255", ""},
		{"169.255.0.0", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"192.167.255.255", ""},
		{"192.169.0.0", ""},
		{"223.255.255.255", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},
		{"2002:808:808::1", ""},
		{"2606:4700:4700::1111", ""},
		{"2400:cb00::1", ""},
	}
	for _, tc := range cases {
		a := netip.MustParseAddr(tc.addr)
		got := AddressReason(a)
		if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
			t.Errorf("AddressReason(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestHostPatterns(t *testing.T) {
	t.Parallel()
	match := []struct {
		pattern, host string
		want          bool
	}{
		{"*.azure-devices-provisioning.net", "global.azure-devices-provisioning.net", true},
		{"*.azure-devices-provisioning.net", "GLOBAL.Azure-Devices-Provisioning.NET.", true},
		{"*.azure-devices-provisioning.net", "azure-devices-provisioning.net", false},
		{"*.azure-devices-provisioning.net", "evilazure-devices-provisioning.net", false},
		{"*.azure-devices-provisioning.net", "global.azure-devices-provisioning.net.evil.example", false},
		{"*.aliyuncs.com", "iot-auth.cn-shanghai.aliyuncs.com", true},
		{"*.tencentdevices.com", "ap-guangzhou.gateway.tencentdevices.com", true},
		{"dps.internal.example", "dps.internal.example", true},
		{"dps.internal.example", "x.dps.internal.example", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"::1", "[::1]", false}, // callers strip brackets first
		{"::1", "0:0::1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"*.example.com", "10.0.0.1", false},
	}
	for _, tc := range match {
		if got := matchHost(tc.pattern, tc.host); got != tc.want {
			t.Errorf("matchHost(%q, %q) = %t, want %t", tc.pattern, tc.host, got, tc.want)
		}
	}
	for p, ok := range map[string]bool{
		"dps.example.com": true, "*.example.com": true, "127.0.0.1": true, "fd00::1": true, "localhost": true,
		"*": false, "*.com": false, "*.": false, "a.*.example.com": false, "https://x": false, "x:443": false, "": false, "a..b": false,
	} {
		if err := CheckHostPattern(p); (err == nil) != ok {
			t.Errorf("CheckHostPattern(%q) = %v, want ok %t", p, err, ok)
		}
	}
}

// A group's host is checked when it is written: by default only the
// documented domains of its kind, and never an address that is not public
// unless the operator allows it.
func TestCheckHost(t *testing.T) {
	t.Parallel()
	strict := &Client{}
	extended := &Client{AllowHosts: []string{"dps.corp.example", "*.iot.corp.example", "10.1.2.3"}}
	private := &Client{AllowPrivate: true, AllowHosts: []string{"10.1.2.3", "localhost"}}
	cases := []struct {
		c      *Client
		kind   string
		params map[string]string
		want   string // "" accepted
	}{
		{strict, KindAzureDPS, map[string]string{"idScope": scope}, ""},
		{strict, KindAzureDPS, map[string]string{"idScope": scope, "host": "myinstance.azure-devices-provisioning.net"}, ""},
		{strict, KindAzureDPS, map[string]string{"idScope": scope, "host": "global.azure-devices-provisioning.net:443"}, ""},
		{strict, KindAzureDPS, map[string]string{"idScope": scope, "host": "iot-auth.cn-shanghai.aliyuncs.com"}, "not a documented azure-dps host"},
		{strict, KindAliyunDynamic, map[string]string{"productKey": "pk", "regionId": "ap-southeast-1"}, ""},
		{strict, KindAliyunDynamic, map[string]string{"productKey": "pk", "host": "evil.example"}, "not a documented aliyun-dynamic host"},
		{strict, KindTencentDynamic, map[string]string{"productId": "P"}, ""},
		{strict, KindTencentDynamic, map[string]string{"productId": "P", "host": "localhost:8443"}, "not a documented tencent-dynamic host"},
		{strict, KindTencentDynamic, map[string]string{"productId": "P", "host": "127.0.0.1:8443"}, "loopback"},
		{strict, KindAzureDPS, map[string]string{"idScope": scope, "host": "[::1]:8443"}, "loopback"},
		{strict, KindAzureDPS, map[string]string{"idScope": scope, "host": "169.254.169.254"}, "link-local"},
		{strict, KindAzureDPS, map[string]string{"idScope": scope, "host": "[::ffff:10.0.0.1]:443"}, "private"},
		{strict, KindAzureDPS, map[string]string{"idScope": scope, "host": "8.8.8.8"}, "not a documented azure-dps host"},
		{extended, KindAzureDPS, map[string]string{"idScope": scope, "host": "dps.corp.example"}, ""},
		{extended, KindTencentDynamic, map[string]string{"productId": "P", "host": "reg.iot.corp.example:8443"}, ""},
		{extended, KindAzureDPS, map[string]string{"idScope": scope, "host": "10.1.2.3"}, "private"},
		{private, KindAzureDPS, map[string]string{"idScope": scope, "host": "10.1.2.3:8443"}, ""},
		{private, KindAzureDPS, map[string]string{"idScope": scope, "host": "localhost:8443"}, ""},
		{private, KindAzureDPS, map[string]string{"idScope": scope, "host": "10.1.2.4"}, "not a documented azure-dps host"},
	}
	for _, tc := range cases {
		errs := tc.c.Check(tc.kind, tc.params)
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("Check(%s, %v) = %v, want none", tc.kind, tc.params, errs)
		case tc.want != "" && (len(errs) != 1 || errs[0].Field != "params.host" || !strings.Contains(errs[0].Reason, tc.want)):
			t.Errorf("Check(%s, %v) = %v, want params.host %q", tc.kind, tc.params, errs, tc.want)
		}
	}
}

// Every address dialled is checked, whatever name led to it: the client
// built for the registrations refuses to connect to each kind of address
// that is not public (the check runs before connect, so nothing is sent and
// no such network needs to exist), and allows it with AllowPrivate.
func TestDialRefusesNonPublic(t *testing.T) {
	t.Parallel()
	hc, err := (&Client{}).httpClient()
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "127.1.2.3", "[::1]", "169.254.169.254", "[fe80::1%25lo]", "10.0.0.1", "172.16.5.4",
		"192.168.0.1", "100.64.0.1", "[fc00::1]", "[fd00::1]", "0.0.0.0", "[::ffff:127.0.0.1]", "[::ffff:192.168.0.1]", "[::]", "[64:ff9b::7f00:1]"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+":443/", nil)
		_, err := hc.Do(req)
		cancel()
		var ae *AddressError
		if !errors.As(err, &ae) {
			t.Errorf("GET https://%s: %v, want an AddressError", host, err)
		}
	}
}

// The default refuses a name that resolves to loopback (localhost), even
// when the name is an allowed host, because the address dialled is checked:
// nothing reaches the emulator, and the failure is ErrInvalid at once, not
// a retried ErrUnavailable. With AllowPrivate the same call succeeds.
func TestDefaultRefusesLoopbackName(t *testing.T) {
	t.Parallel()
	d := startDPS(t, cloudemu.DPSOptions{AssigningPolls: -1}, cloudemu.DPSGroup{Key: msGroupKey, Hub: hub})
	_, port, _ := net.SplitHostPort(d.Addr())
	for _, tc := range []struct {
		name  string
		c     *Client
		host  string
		want  error
		words string
	}{
		{"localhost, allowed name, private not allowed", &Client{HTTP: d.Client(), AllowHosts: []string{"localhost"}}, "localhost:" + port, ErrInvalid, "loopback address"},
		{"127.0.0.1, allowed, private not allowed", &Client{HTTP: d.Client(), AllowHosts: []string{"127.0.0.1"}}, d.Addr(), ErrInvalid, "loopback address"},
		{"localhost, default hosts", &Client{HTTP: d.Client(), AllowPrivate: true}, "localhost:" + port, ErrInvalid, "not a documented azure-dps host"},
		{"localhost, allowed and private allowed", &Client{HTTP: d.Client(), AllowHosts: []string{"localhost"}, AllowPrivate: true}, "localhost:" + port, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(d.Requests())
			start := time.Now()
			_, err := tc.c.Register(ctxT(t, 20*time.Second), Request{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope, "host": tc.host},
				GroupSecret: msGroupKey, DeviceID: "dev-" + strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), ",", "")})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.want, tc.words)
			}
			if n := len(d.Requests()) - before; n != 0 {
				t.Fatalf("the emulator answered %d requests", n)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("took %v: it retried", took)
			}
			noLeak(t, err, dpsSecrets(t, msGroupKey, "x")...)
		})
	}
}

// TestRedirectsRefused: a registration host that answers with a redirect
// (a fake: no cloud's registration API redirects) of any 3xx kind, to
// HTTPS or to plain HTTP, gets no second request: the target never sees
// the Authorization SAS, the Tencent signature headers or the Alibaba sign.
// The call fails at once as a refusal, without retries.
func TestRedirectsRefused(t *testing.T) {
	t.Parallel()
	ca, err := cloudemu.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ca.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	var targetHits atomic.Int64
	target := func(tlsOn bool) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		scheme := "http"
		if tlsOn {
			ln, scheme = tls.NewListener(ln, cfg), "https"
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			targetHits.Add(1)
			t.Errorf("the redirect target got %s %s with Authorization %t, X-TC-Signature %t", r.Method, r.URL.Path,
				r.Header.Get("Authorization") != "", r.Header.Get("X-TC-Signature") != "")
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return scheme + "://" + ln.Addr().String() + "/stolen"
	}
	targets := []string{target(false), target(true), "http://169.254.169.254/latest/meta-data/"}
	var status atomic.Int64
	var location atomic.Value
	var hits atomic.Int64
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if loc := location.Load().(string); loc != "" {
			w.Header().Set("Location", loc)
		}
		w.WriteHeader(int(status.Load()))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	host := ln.Addr().String()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}}
	c := clientFor(hc)
	requests := []Request{
		{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope, "host": host}, GroupSecret: msGroupKey, DeviceID: msRegID},
		{Kind: KindAliyunDynamic, Params: map[string]string{"productKey": "pk", "host": host}, GroupSecret: "aliyun-product-secret", DeviceID: "d"},
		{Kind: KindTencentDynamic, Params: map[string]string{"productId": "P", "host": host}, GroupSecret: "tencent-product-secret", DeviceID: "d"},
	}
	for _, code := range []int{300, 301, 302, 303, 304, 305, 306, 307, 308} {
		for _, loc := range append(targets, "") {
			for _, r := range requests {
				status.Store(int64(code))
				location.Store(loc)
				before := hits.Load()
				_, err := c.Register(ctxT(t, 10*time.Second), r)
				what := fmt.Sprintf("%s, %d to %q", r.Kind, code, loc)
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d, a redirect", code)) {
					t.Fatalf("%s: err = %v, want a refused redirect", what, err)
				}
				if n := hits.Load() - before; n != 1 {
					t.Fatalf("%s: the host got %d requests, want 1 (no retry)", what, n)
				}
				noLeak(t, err, append(dpsSecrets(t, msGroupKey, msRegID), r.GroupSecret, "/stolen", "meta-data")...)
			}
		}
	}
	if n := targetHits.Load(); n != 0 {
		t.Fatalf("the redirect targets got %d requests", n)
	}
}

// A client whose transport the address check cannot be put in is refused
// before anything is sent.
func TestForeignTransportRefused(t *testing.T) {
	t.Parallel()
	c := &Client{HTTP: &http.Client{Transport: roundTripper(func(*http.Request) (*http.Response, error) {
		t.Error("the foreign transport was used")
		return nil, errors.New("used")
	})}}
	_, err := c.Register(context.Background(), Request{Kind: KindAzureDPS, Params: map[string]string{"idScope": scope}, GroupSecret: msGroupKey, DeviceID: "d"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
