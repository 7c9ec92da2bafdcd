package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
)

const srvAdmin = "csa_serve-test-admin-0123456789abcdef0123"

// running is a `credsign serve` started in-process on 127.0.0.1:0.
type running struct {
	addr   string
	stdout *testutil.SyncBuffer
	stderr *testutil.SyncBuffer
	stop   context.CancelFunc
	exited chan struct{} // closed when serve returns
	code   int           // serve's exit status, once exited is closed
	check  sync.Once
}

var listenLine = regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"listening"`)

// startServe runs serve with args (plus --addr 127.0.0.1:0 and a temporary
// --data-dir unless given) and the environment env, and waits for its
// "listening" log line.
func startServe(t *testing.T, env map[string]string, args ...string) *running {
	t.Helper()
	joined := " " + strings.Join(args, " ")
	if !strings.Contains(joined, " --addr") {
		args = append(args, "--addr", "127.0.0.1:0")
	}
	if !strings.Contains(joined, " --data-dir") {
		args = append(args, "--data-dir", t.TempDir())
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, stop: cancel, exited: make(chan struct{})}
	go func() {
		r.code = serve(ctx, args, testEnv(env), r.stdout, r.stderr)
		close(r.exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := listenLine.FindStringSubmatch(r.stderr.String()); m != nil {
			r.addr = m[1]
			t.Cleanup(func() { r.shutdown(t) })
			return r
		}
		select {
		case <-r.exited:
			t.Fatalf("serve exited %d before listening:\n%s", r.code, r.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	t.Fatalf("serve did not log its address:\n%s", r.stderr)
	return nil
}

// testEnv is the environment of a test's serve: env, plus the Vault
// store's settings other than VAULT_ADDR (which chooses the store) from
// the process's environment, where Vault tests set them.
func testEnv(env map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		if k != "VAULT_ADDR" && (strings.HasPrefix(k, "VAULT_") || strings.HasPrefix(k, "CREDSIGN_VAULT_")) {
			return os.Getenv(k)
		}
		return ""
	}
}

// shutdown stops the server and checks that it exits cleanly.
func (r *running) shutdown(t *testing.T) {
	t.Helper()
	r.stop()
	select {
	case <-r.exited:
		r.check.Do(func() {
			if r.code != 0 {
				t.Errorf("serve exited %d:\n%s", r.code, r.stderr)
			}
		})
	case <-time.After(10 * time.Second):
		t.Errorf("serve did not stop")
	}
}

// call sends a JSON request and decodes a JSON answer into out (if non-nil).
func call(t *testing.T, c *http.Client, method, url, token string, body any, out any) int {
	t.Helper()
	status, _, b := testutil.Do(t, c, method, url, token, body)
	if out != nil && status < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return status
}

func TestServeFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		msg  string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "refusing plain HTTP"},
		{[]string{"--addr", ":8080"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "refusing plain HTTP"},
		{[]string{"--addr", "127.0.0.1:0"}, nil, "no admin token"},
		{[]string{"--tls-cert", "x.pem"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "go together"},
		{[]string{"--client-ca", "ca.pem"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--client-ca needs"},
		{[]string{"--store", "s3"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--store is vault or file"},
		{[]string{"--addr", "127.0.0.1:0"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": "short"}, "at least 16"},
		{[]string{"extra"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "unexpected arguments"},
		{[]string{"--provisioner-rate-burst", "0"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--provisioner-rate-burst must be at least 1"},
		{[]string{"--import-idle-timeout", "0s"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--import-idle-timeout must be at least 1s"},
		{[]string{"--imports-per-token", "0"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--imports and --imports-per-token must be at least 1"},
		{[]string{"--enrolment-rate-limit", "0"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--enrolment-rate-limit is a rate per minute (negative leaves enrolment tokens unlimited), not 0"},
		{[]string{"--enrolment-rate-burst", "0"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--enrolment-rate-burst must be at least 1"},
		{[]string{"--enrolment-max-failures", "0"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--enrolment-max-failures must be at least 1"},
		{[]string{"--max-device-ttl", "0s"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--max-device-ttl must be at least 1s"},
		{[]string{"--log-level", "verbose"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, `--log-level is debug, info, warn or error, not "verbose"`},
		{[]string{"--log-level", "trace"}, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, `--log-level is debug, info, warn or error, not "trace"`},
	}
	for _, c := range cases {
		var errb testutil.SyncBuffer
		args := append(c.args, "--data-dir", t.TempDir())
		code := serve(context.Background(), args, func(k string) string { return c.env[k] }, io.Discard, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), exitUsage, c.msg)
		}
	}
	// --insecure-http is the explicit opt-in for a non-loopback address.
	if _, err := parseServeFlags([]string{"--addr", "0.0.0.0:8080", "--insecure-http"}, io.Discard); err != nil {
		t.Errorf("--insecure-http refused: %v", err)
	}
	for _, a := range []string{"127.0.0.1:1", "[::1]:1", "localhost:1"} {
		if ok, err := isLoopback("--addr", a); !ok || err != nil {
			t.Errorf("isLoopback(%q) = %v, %v", a, ok, err)
		}
	}
}

// TestServeDevGeneratesAdminToken checks that --dev prints a generated
// admin token once, on stdout, so that the logs (stderr) never hold it.
// TestServePortInUse: a startup failure is one plain line, not a log record.
func TestServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var errb testutil.SyncBuffer
	args := []string{"--addr", ln.Addr().String(), "--data-dir", t.TempDir()}
	code := serve(context.Background(), args, func(k string) string { return map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}[k] }, io.Discard, &errb)
	out := errb.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if code != exitError || !strings.HasPrefix(last, "credsign serve: cannot listen on "+ln.Addr().String()) ||
		!strings.Contains(last, "address already in use") || strings.HasPrefix(last, "{") {
		t.Errorf("exit %d, stderr %q; want exit 1 and one plain line saying the address is in use", code, out)
	}
}

func TestServeDevGeneratesAdminToken(t *testing.T) {
	r := startServe(t, nil, "--dev")
	out := r.stdout.String()
	tokens := regexp.MustCompile(`export CREDSIGN_ADMIN_TOKEN=(csa_[0-9a-f]{64})`).FindAllStringSubmatch(out, -1)
	if len(tokens) != 1 {
		t.Fatalf("want the admin token printed once, got %d times:\n%s", len(tokens), out)
	}
	admin := tokens[0][1]
	base := "http://" + r.addr
	if code := call(t, http.DefaultClient, "GET", base+"/v1/clouds", admin, nil, nil); code != 200 {
		t.Errorf("generated admin token: %d", code)
	}
	if code := call(t, http.DefaultClient, "GET", base+"/v1/clouds", "", nil, nil); code != 401 {
		t.Errorf("no token: %d", code)
	}
	r.shutdown(t)
	if n := strings.Count(r.stdout.String(), admin); n != 1 {
		t.Errorf("the admin token appears %d times on stdout, want once", n)
	}
	if strings.Contains(r.stderr.String(), admin) {
		t.Errorf("the admin token is in the logs (stderr):\n%s", r.stderr)
	}
}

// TestServeFullRunLeaksNothing walks the README flow for every cloud
// against the real server, adds failed requests that carry secrets, stops
// the server and searches everything it logged for each secret, token and
// password.
func TestServeFullRunLeaksNothing(t *testing.T) {
	r := startServe(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--rate-limit", "0")
	base := "http://" + r.addr
	c := http.DefaultClient
	var prov struct{ Token string }
	if code := call(t, c, "POST", base+"/v1/tokens", srvAdmin, map[string]string{"role": "provisioner"}, &prov); code != 201 {
		t.Fatalf("provisioner token: %d", code)
	}
	secrets := map[string]string{
		"aliyun":  "aliyun-device-secret-9d7c",
		"tencent": "dGVuY2VudC1wc2stZm9yLWxlYWstdGVzdA==",
		"huawei":  "huawei-device-secret-3e1f",
		"azure":   "bGVhay10ZXN0LWF6dXJlLWtleS0zMi1ieXRlcyEhIQ==",
	}
	params := map[string]map[string]any{
		"aliyun":  {"productKey": "pkLeak", "deviceName": "dn1"},
		"tencent": {"productId": "PIDLEAK001", "deviceName": "dn2"},
		"huawei":  {"deviceId": "p_n3"},
		"azure":   {"hubHost": "leak.azure-devices.net", "deviceId": "dn4"},
	}
	leaks := []string{srvAdmin, prov.Token}
	for cloud, secret := range secrets {
		leaks = append(leaks, secret)
		id := "leak-" + cloud
		doc := map[string]any{"cloud": cloud, "params": params[cloud], "secret": secret}
		if code := call(t, c, "PUT", base+"/v1/devices/"+id, prov.Token, doc, nil); code != 201 {
			t.Fatalf("put %s: %d", id, code)
		}
		bad := map[string]any{"cloud": cloud, "params": params[cloud], "secret": secret, "extra": secret}
		if code := call(t, c, "PUT", base+"/v1/devices/"+id, prov.Token, bad, nil); code != 422 {
			t.Errorf("unknown field: %d", code)
		}
		var dt struct{ Token string }
		if code := call(t, c, "POST", base+"/v1/devices/"+id+"/tokens", prov.Token, nil, &dt); code != 201 {
			t.Fatalf("device token: %d", code)
		}
		leaks = append(leaks, dt.Token)
		var cr struct{ Password string }
		if code := call(t, c, "POST", base+"/v1/devices/"+id+"/credentials", dt.Token, nil, &cr); code != 200 {
			t.Fatalf("credentials for %s: %d", id, code)
		}
		leaks = append(leaks, cr.Password)
	}
	// A wrong token that looks real, and a token in the query string.
	call(t, c, "GET", base+"/v1/devices?after="+prov.Token[4:20], "csp_"+strings.Repeat("0", 64), nil, nil)
	r.shutdown(t)
	logs := r.stderr.String()
	for _, want := range []string{`"message":"listening"`, `"event":"credentials.issued"`, `"message":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for _, s := range leaks {
		if s == "" || strings.Contains(logs, s) {
			t.Errorf("logs contain a secret, token or password (%.6s…)", s)
		}
	}
	if strings.Contains(logs, prov.Token[4:20]) {
		t.Errorf("logs contain the query string")
	}
}

// TestServeLogLevel runs the server at --log-level warn and at the
// default: warn drops the request lines (info) but never the audit lines
// nor the lines saying the server is listening and stopped.
func TestServeLogLevel(t *testing.T) {
	for _, tt := range []struct {
		args     []string
		requests bool
	}{
		{nil, true},
		{[]string{"--log-level", "warn"}, false},
	} {
		r := startServe(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, tt.args...)
		if code := call(t, http.DefaultClient, "POST", "http://"+r.addr+"/v1/tokens", srvAdmin, map[string]string{"role": "provisioner"}, nil); code != 201 {
			t.Fatalf("%v: provisioner token: %d", tt.args, code)
		}
		r.shutdown(t)
		logs := r.stderr.String()
		for _, want := range []string{`"message":"listening"`, `"level":"info","audit":true,"event":"token.created"`, `"message":"stopped"`} {
			if !strings.Contains(logs, want) {
				t.Errorf("%v: logs lack %s:\n%s", tt.args, want, logs)
			}
		}
		if got := strings.Contains(logs, `"message":"request"`); got != tt.requests {
			t.Errorf("%v: request lines logged: %v, want %v:\n%s", tt.args, got, tt.requests, logs)
		}
	}
}

// TestServeRateLimitFlags checks the device and the admin/provisioner
// limits and their flags; with the defaults, a provisioner making a few
// hundred calls in a row is never slowed.
func TestServeRateLimitFlags(t *testing.T) {
	cases := []struct {
		name      string
		args      []string
		n         int
		wantAdmin string // status of the admin's last call
	}{
		{"defaults", nil, 150, "200"},
		{"provisioner limit", []string{"--provisioner-rate-limit", "1", "--provisioner-rate-burst", "2"}, 3, "429"},
		{"device limit leaves admin alone", []string{"--rate-limit", "1", "--rate-burst", "2"}, 30, "200"},
		{"all off", []string{"--rate-limit", "0", "--provisioner-rate-limit", "1", "--provisioner-rate-burst", "1"}, 30, "200"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := startServe(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, c.args...)
			base := "http://" + r.addr
			code := 0
			for i := 0; i < c.n; i++ {
				code = call(t, http.DefaultClient, "GET", base+"/v1/clouds", srvAdmin, nil, nil)
			}
			if fmt.Sprint(code) != c.wantAdmin {
				t.Errorf("after %d admin calls: %d, want %s", c.n, code, c.wantAdmin)
			}
		})
	}
	// The device limit, through a device token.
	r := startServe(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--rate-limit", "1", "--rate-burst", "2")
	base := "http://" + r.addr
	doc := map[string]any{"cloud": "huawei", "params": map[string]any{"deviceId": "p_n1"}, "secret": "rate-secret"}
	if code := call(t, http.DefaultClient, "PUT", base+"/v1/devices/rl-1", srvAdmin, doc, nil); code != 201 {
		t.Fatalf("put: %d", code)
	}
	var dt struct{ Token string }
	if code := call(t, http.DefaultClient, "POST", base+"/v1/devices/rl-1/tokens", srvAdmin, nil, &dt); code != 201 {
		t.Fatalf("mint: %d", code)
	}
	codes := []int{}
	for i := 0; i < 3; i++ {
		codes = append(codes, call(t, http.DefaultClient, "POST", base+"/v1/devices/rl-1/credentials", dt.Token, nil, nil))
	}
	if fmt.Sprint(codes) != "[200 200 429]" {
		t.Errorf("device token codes %v, want [200 200 429]", codes)
	}
}

// TestServeGracefulShutdown starts a request, begins the shutdown while
// its body is still arriving, and checks that the request completes, new
// connections are refused and serve returns 0.
func TestServeGracefulShutdown(t *testing.T) {
	r := startServe(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin})
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"role":"provisioner"}`
	fmt.Fprintf(conn, "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n%s",
		srvAdmin, len(body), body[:5])
	// net/http says 100 Continue when the handler begins to read the
	// body: the request is in flight.
	answers := bufio.NewReader(conn)
	if res, err := http.ReadResponse(answers, nil); err != nil || res.StatusCode != http.StatusContinue {
		t.Fatalf("no 100 Continue: %v", err)
	}
	r.stop()
	if !waitUntil(func() bool { return strings.Contains(r.stderr.String(), "shutting down") }) {
		t.Fatal("no shutdown began")
	}
	if !waitUntil(func() bool {
		c, err := net.DialTimeout("tcp", r.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	}) {
		t.Error("the listener still accepts connections during shutdown")
	}
	if _, err := io.WriteString(conn, body[5:]); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(answers, nil)
	if err != nil {
		t.Fatalf("in-flight request lost: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Errorf("in-flight request: %d", res.StatusCode)
	}
	select {
	case <-r.exited:
		if r.code != 0 {
			t.Errorf("exit %d", r.code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return")
	}
}

// waitUntil reports whether cond holds within 2s.
func waitUntil(cond func() bool) bool {
	return testutil.Poll(context.Background(), 2*time.Second, testutil.Holds("a condition", cond)) == nil
}

// testPKI is a CA with helpers to issue leaf certificates.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "credsign test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testPKI{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for a server (127.0.0.1) or client.
func (p *testPKI) issue(t *testing.T, serial int64, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "credsign test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedSerial connects with a fresh TLS connection and returns the
// serial number of the server's certificate.
func servedSerial(t *testing.T, addr string, cfg *tls.Config) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestServeTLS(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c, k := pki.issue(t, 100, false)
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	r := startServe(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.Contains(r.stderr.String(), `"url":"https://`) {
		t.Errorf("listening line does not say https")
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.cert)
	cfg := &tls.Config{RootCAs: roots}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	if code := call(t, client, "GET", "https://"+r.addr+"/v1/clouds", srvAdmin, nil, nil); code != 200 {
		t.Errorf("HTTPS request: %d", code)
	}
	// The certificate's expiry is a metric the alerting rules watch.
	if v := metricValue(t, client, "https://"+r.addr, "credsign_tls_certificate_expiry_timestamp_seconds"); v < float64(time.Now().Add(50*time.Minute).Unix()) || v > float64(time.Now().Add(61*time.Minute).Unix()) {
		t.Errorf("credsign_tls_certificate_expiry_timestamp_seconds = %v, want about an hour from now (the certificate's NotAfter)", v)
	}
	// TLS 1.1 is refused.
	if conn, err := tls.Dial("tcp", r.addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	// Plain HTTP to the TLS port fails.
	if res, err := http.Get("http://" + r.addr + "/healthz"); err == nil {
		if res.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS port")
		}
		res.Body.Close()
	}
	// A renewed certificate is picked up without a restart.
	if got := servedSerial(t, r.addr, cfg); got != 100 {
		t.Fatalf("serial %d, want 100", got)
	}
	c, k = pki.issue(t, 200, false)
	writeFile(t, keyFile, k)
	writeFile(t, certFile, c)
	future := time.Now().Add(2 * time.Second)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, future, future); err != nil {
			t.Fatal(err)
		}
	}
	// The files are looked at once a second at most, on a handshake.
	testutil.Eventually(t, 5*time.Second, func() error {
		if got := servedSerial(t, r.addr, cfg); got != 200 {
			return fmt.Errorf("serial %d served, want the renewed certificate's 200", got)
		}
		return nil
	})
	// Log lines go out every --log-flush-interval.
	if !waitUntil(func() bool { return strings.Contains(r.stderr.String(), "TLS certificate reloaded") }) {
		t.Errorf("no reload log line")
	}
}

func TestServeClientCertificates(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.pem")
	c, k := pki.issue(t, 1, false)
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	writeFile(t, caFile, pki.pem)
	r := startServe(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin},
		"--tls-cert", certFile, "--tls-key", keyFile, "--client-ca", caFile)
	roots := x509.NewCertPool()
	roots.AddCert(pki.cert)
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if res, err := noCert.Get("https://" + r.addr + "/healthz"); err == nil {
		res.Body.Close()
		t.Error("a client without a certificate was served")
	}
	cc, ck := pki.issue(t, 2, true)
	pair, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
	if code := call(t, withCert, "GET", "https://"+r.addr+"/healthz", "", nil, nil); code != 200 {
		t.Errorf("client with certificate: %d", code)
	}
}

// TestServeStoreKeyFromEnv: with CREDSIGN_STORE_KEY the embedded store uses
// that key and writes no key file; a restart with another key is refused
// with a clear error instead of serving from a store it cannot read.
func TestServeStoreKeyFromEnv(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	env := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin, "CREDSIGN_STORE_KEY": base64.StdEncoding.EncodeToString(key)}
	putOneDevice(t, env, "key-test-secret", "--data-dir", dir)
	if _, err := os.Stat(filepath.Join(dir, "store.key")); !os.IsNotExist(err) {
		t.Errorf("a key file was written although the key came from the environment: %v", err)
	}

	rand.Read(key)
	env["CREDSIGN_STORE_KEY"] = base64.StdEncoding.EncodeToString(key)
	for _, tt := range []struct{ key, want string }{
		{base64.StdEncoding.EncodeToString(key), "wrong key"},
		{"not-base64!", "CREDSIGN_STORE_KEY"},
	} {
		env["CREDSIGN_STORE_KEY"] = tt.key
		code, stderr := serveNoStart(env, "--data-dir", dir)
		if code == 0 || !strings.Contains(stderr, tt.want) {
			t.Errorf("restart with key %q: exit %d, stderr %q, want it to say %q", tt.key, code, stderr, tt.want)
		}
	}
}

// TestServeStoreKeyFile: the key from a file (a systemd credential), not
// written beside the data; a wrong or bad key file stops the start.
func TestServeStoreKeyFile(t *testing.T) {
	dir, keyDir := t.TempDir(), t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(keyDir, "store-key")
	writeFile(t, keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"))
	env := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}
	putOneDevice(t, env, "key-file-secret", "--data-dir", dir, "--store-key-file", keyFile)
	if _, err := os.Stat(filepath.Join(dir, "store.key")); !os.IsNotExist(err) {
		t.Errorf("a key file was written beside the data although --store-key-file was given: %v", err)
	}
	// The same key from the environment opens the same data.
	env["CREDSIGN_STORE_KEY"] = base64.StdEncoding.EncodeToString(key)
	r := startServe(t, env, "--data-dir", dir)
	c := &http.Client{Timeout: 5 * time.Second}
	if code := call(t, c, http.MethodGet, "http://"+r.addr+"/v1/devices/d1", srvAdmin, nil, nil); code != http.StatusOK {
		t.Errorf("GET with the key from the environment = %d", code)
	}
	r.shutdown(t)
	delete(env, "CREDSIGN_STORE_KEY")
	rand.Read(key)
	writeFile(t, keyFile, []byte(base64.StdEncoding.EncodeToString(key)))
	bad := filepath.Join(keyDir, "bad")
	writeFile(t, bad, []byte("not a key"))
	for _, tt := range []struct{ file, want string }{
		{keyFile, "wrong key"},
		{bad, "--store-key-file"},
		{filepath.Join(keyDir, "missing"), "reading --store-key-file"},
	} {
		code, stderr := serveNoStart(env, "--data-dir", dir, "--store-key-file", tt.file)
		if code == 0 || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "not a key") {
			t.Errorf("key file %s: exit %d, stderr %q, want it to say %q", tt.file, code, stderr, tt.want)
		}
	}
}

// putOneDevice starts serve with env and args, creates device d1 (a
// Huawei device whose secret is secret) and stops the server: a store for
// the tests of its key.
func putOneDevice(t *testing.T, env map[string]string, secret string, args ...string) {
	t.Helper()
	r := startServe(t, env, args...)
	doc := map[string]any{"cloud": "huawei", "params": map[string]any{"deviceId": "d1"}, "secret": secret}
	if code := call(t, &http.Client{Timeout: 5 * time.Second}, http.MethodPut, "http://"+r.addr+"/v1/devices/d1", srvAdmin, doc, nil); code != http.StatusCreated {
		t.Fatalf("PUT = %d", code)
	}
	r.shutdown(t)
}

// serveNoStart runs serve on a free port with env and args, which should
// keep it from starting, and returns its exit status and what it wrote to
// stderr.
func serveNoStart(env map[string]string, args ...string) (int, string) {
	stderr := &testutil.SyncBuffer{}
	code := serve(context.Background(), append([]string{"--addr", "127.0.0.1:0"}, args...), func(k string) string { return env[k] }, io.Discard, stderr)
	return code, stderr.String()
}

// metricValue scrapes base/metrics and returns the value of a metric
// without labels (NaN when absent).
func metricValue(t *testing.T, c *http.Client, base, name string) float64 {
	t.Helper()
	_, _, body := testutil.Do(t, c, http.MethodGet, base+"/metrics", "", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return math.NaN()
}
