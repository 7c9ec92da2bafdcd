package clouds_test

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
	"github.com/credsign/credsign/internal/testing/emutest"
)

// A group's host is checked when it is written: by default only the
// documented domains of its kind, and never an address that is not public
// unless the operator allows it.
func TestCheckHost(t *testing.T) {
	t.Parallel()
	strict := &Client{Kinds: reg.RegistrationKinds()}
	extended := &Client{Kinds: reg.RegistrationKinds(), AllowHosts: []string{"dps.corp.example", "*.iot.corp.example", "10.1.2.3"}}
	private := &Client{Kinds: reg.RegistrationKinds(), AllowPrivate: true, AllowHosts: []string{"10.1.2.3", "localhost"}}
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
		{"localhost, allowed name, private not allowed", &Client{Kinds: reg.RegistrationKinds(), HTTP: d.Client(), AllowHosts: []string{"localhost"}}, "localhost:" + port, ErrInvalid, "loopback address"},
		{"127.0.0.1, allowed, private not allowed", &Client{Kinds: reg.RegistrationKinds(), HTTP: d.Client(), AllowHosts: []string{"127.0.0.1"}}, d.Addr(), ErrInvalid, "loopback address"},
		{"localhost, default hosts", &Client{Kinds: reg.RegistrationKinds(), HTTP: d.Client(), AllowPrivate: true}, "localhost:" + port, ErrInvalid, "not a documented azure-dps host"},
		{"localhost, allowed and private allowed", &Client{Kinds: reg.RegistrationKinds(), HTTP: d.Client(), AllowHosts: []string{"localhost"}, AllowPrivate: true}, "localhost:" + port, nil, ""},
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
	ca, cfg := emutest.LoopbackTLS(t)
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
	c := &Client{Kinds: reg.RegistrationKinds(), HTTP: &http.Client{Transport: roundTripper(func(*http.Request) (*http.Response, error) {
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

// FuzzCheckHost: whatever host a group names, the default policy accepts it
// only when it is a name under the kind's documented domain (never an
// address, never a name that merely contains the domain), and AddressReason
// judges an IPv4-mapped address as its IPv4 address.
func FuzzCheckHost(f *testing.F) {
	for _, s := range []string{"global.azure-devices-provisioning.net", "x.azure-devices-provisioning.net:443", "127.0.0.1", "[::1]:8443",
		"localhost", "azure-devices-provisioning.net", "a.azure-devices-provisioning.net.evil", "A.AZURE-DEVICES-PROVISIONING.NET.",
		"a.azure-devices-provisioning.net%2f", "[::ffff:a9fe:a9fe]", "user@a.azure-devices-provisioning.net"} {
		f.Add(s)
	}
	c := &Client{Kinds: reg.RegistrationKinds()}
	f.Fuzz(func(t *testing.T, host string) {
		errs := c.Check(KindAzureDPS, map[string]string{"idScope": scope, "host": host})
		if len(errs) > 0 {
			return
		}
		name := host
		if h, _, err := net.SplitHostPort(host); err == nil {
			name = h
		}
		name = strings.TrimSuffix(strings.ToLower(name), ".")
		if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
			t.Fatalf("accepted the address %q", host)
		}
		if !strings.HasSuffix(name, ".azure-devices-provisioning.net") || len(name) <= len(".azure-devices-provisioning.net") {
			t.Fatalf("accepted %q, outside *.azure-devices-provisioning.net", host)
		}
		if strings.ContainsAny(name, "/@?#%\\ ") {
			t.Fatalf("accepted %q", host)
		}
	})
}
