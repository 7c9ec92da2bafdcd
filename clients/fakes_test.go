package clients_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/emutest"
	"github.com/credsign/credsign/internal/testing/testutil"
)

// fake is a FAKE server on loopback for failures a real credsign or broker
// does not produce on demand (silence, a connection closed mid-answer, a
// certificate for another name): it accepts connections, optionally over
// TLS, and hands each to serve. It records when each connection came and
// whether any bytes arrived after the TLS handshake.
type fake struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []time.Time
	got   int // connections on which the client sent anything (after TLS)
}

func startFake(t *testing.T, cfg *tls.Config, serve func(c net.Conn, r *bufio.Reader)) *fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, time.Now())
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				// Nothing here waits longer than the test.
				_ = c.SetDeadline(time.Now().Add(60 * time.Second))
				if cfg != nil {
					tc := tls.Server(c, cfg)
					if tc.Handshake() != nil {
						return
					}
					c = tc
				}
				r := bufio.NewReader(c)
				if _, err := r.Peek(1); err != nil {
					return
				}
				f.mu.Lock()
				f.got++
				f.mu.Unlock()
				serve(c, r)
			}()
		}
	}()
	return f
}

func (f *fake) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *fake) snapshot() (conns []time.Time, got int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.conns...), f.got
}

// selfSigned is a TLS configuration with a self-signed certificate for
// evil.example, and that certificate's PEM.
func selfSigned(t *testing.T) (*tls.Config, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil.example"},
		DNSNames: []string{"evil.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// loopbackTLS is a TLS configuration with a certificate for 127.0.0.1 from
// a private CA, and the CA's PEM file.
func loopbackTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	ca, cfg := emutest.LoopbackTLS(t)
	return cfg, testutil.WriteFile(t, "fake-ca.pem", ca.CertPEM())
}

// Ways a fake misbehaves, after reading what the client sent first.
var (
	silent = func(c net.Conn, r *bufio.Reader) { _, _ = io.Copy(io.Discard, r) }
	// hangUp reads what the client sends until it pauses, then closes
	// cleanly (the client reads an end of stream, not a reset).
	hangUp = func(c net.Conn, r *bufio.Reader) {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, _ = io.Copy(io.Discard, r)
	}
	answer = func(resp string) func(c net.Conn, r *bufio.Reader) {
		return func(c net.Conn, r *bufio.Reader) {
			req, err := http.ReadRequest(r) // the request's headers and its small body
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			_, _ = io.WriteString(c, resp)
		}
	}
	// noPuback answers CONNECT and SUBSCRIBE but never a PUBLISH (nor a
	// PINGREQ): a broker that stopped working after the session began.
	noPuback = func(c net.Conn, r *bufio.Reader) {
		for {
			typ, err := r.ReadByte()
			if err != nil {
				return
			}
			n, shift := 0, 0
			for {
				b, err := r.ReadByte()
				if err != nil {
					return
				}
				n |= int(b&0x7f) << shift
				if b&0x80 == 0 {
					break
				}
				shift += 7
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				return
			}
			switch typ >> 4 {
			case 1: // CONNECT
				_, _ = c.Write([]byte{0x20, 0x02, 0, 0})
			case 8: // SUBSCRIBE: SUBACK with its packet id, QoS 1 granted
				_, _ = c.Write([]byte{0x90, 0x03, body[0], body[1], 1})
			}
		}
	}
)

// TestMicroPythonSurvivesMisbehavingServers runs the MicroPython client on
// MicroPython against FAKE credsign servers and brokers that misbehave in
// ways the real ones do not on demand. In each case it must not send the
// device token or the password to a server it has not verified, must not
// hang (every network step times out after the configured 3 s), must not
// crash, and must try again with a growing back-off.
func TestMicroPythonSurvivesMisbehavingServers(t *testing.T) {
	evil, evilPEM := selfSigned(t)
	good, goodCA := loopbackTLS(t)
	evilCA := testutil.WriteFile(t, "evil.pem", evilPEM)
	type tc struct {
		name string
		// credsign is a fake credsign when set; otherwise the real one,
		// with the device's broker a fake.
		credsign bool
		tls      *tls.Config
		caFile   string // the CA file the client is given for the fake
		serve    func(net.Conn, *bufio.Reader)
		// sent: whether the client may send anything on the connection
		// (false: its TLS check must fail first).
		sent bool
	}
	cases := []tc{
		{"credsign untrusted certificate", true, evil, goodCA, silent, false},
		{"credsign certificate for another name", true, evil, evilCA, silent, false},
		{"credsign silent", true, good, goodCA, silent, true},
		{"credsign closes before answering", true, good, goodCA, hangUp, true},
		{"credsign short body", true, good, goodCA, answer("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"clientId\":"), true},
		{"credsign oversized body", true, good, goodCA, answer("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n{"), true},
		{"credsign status line only", true, good, goodCA, answer("HTTP/1.1 200 OK\r\n"), true},
		{"broker untrusted certificate", false, evil, goodCA, silent, false},
		{"broker certificate for another name", false, evil, evilCA, silent, false},
		{"broker silent", false, nil, "", silent, true},
		{"broker closes before CONNACK", false, nil, "", hangUp, true},
		{"broker never acknowledges a PUBLISH", false, nil, "", noPuback, true},
		{"broker over TLS never acknowledges a PUBLISH", false, good, goodCA, noPuback, true},
	}
	for _, rt := range runtimes {
		if !rt.isMicroPython() {
			continue
		}
		for _, c := range cases {
			t.Run(rt.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t, 40*time.Second)
				f := startFake(t, c.tls, c.serve)
				srv := startServer(t, serverOptions{})
				var s settings
				var secrets func() []string
				if c.credsign {
					tok := testutil.WriteFile(t, "device.token", []byte("csd_fake-device-token-for-a-fake-server\n"))
					s = settings{server: "https://127.0.0.1:" + strconv.Itoa(f.port()), device: "lamp", tokenFile: tok,
						caFile: c.caFile, interval: 0.3, timeout: 3}
					secrets = func() []string { return []string{"csd_fake-device-token-for-a-fake-server"} }
				} else {
					cloud, params, secret := cloudemu.Tencent, map[string]any{"productId": "ABCDEFGHIJ", "deviceName": "lamp"}, devices[1].Secret
					if c.tls != nil {
						cloud, params, secret = cloudemu.Azure, map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "lamp"}, devices[3].Secret
					}
					params["host"], params["port"] = "127.0.0.1", f.port()
					_, token := srv.admin().Register("lamp", cloud, params, secret)
					tok := testutil.WriteFile(t, "device.token", []byte(token+"\n"))
					s = settings{server: srv.url, device: "lamp", tokenFile: tok, caFile: srv.caFile, brokerCAFile: c.caFile,
						interval: 0.3, timeout: 3}
					secrets = func() []string {
						out := []string{token, secret}
						for _, ex := range srv.exchanges() {
							out = append(out, ex.creds.Password)
						}
						return out
					}
				}
				p := start(t, rt.command(t, s), secrets)
				var conns []time.Time
				testutil.WaitFor(ctx, t, "three connections", func() bool { conns, _ = f.snapshot(); return len(conns) >= 3 || p.exited() })
				if p.exited() {
					t.Fatalf("the client exited (%v)", p.err)
				}
				// Back-off waits of at least 0.5 s, then 1 s (the lower
				// halves of 1 s and 2 s).
				for i := 1; i < 3; i++ {
					if gap := conns[i].Sub(conns[i-1]); gap < 250*time.Millisecond<<i {
						t.Errorf("connection %d came %v after the previous one; want a back-off", i+1, gap.Round(time.Millisecond))
					}
				}
				if _, got := f.snapshot(); got > 0 && !c.sent {
					t.Errorf("the client sent data on %d connections whose certificate it should have refused", got)
				}
				out := p.out.String()
				if strings.Contains(out, "Traceback") {
					t.Errorf("the client crashed:\n%s", out)
				}
				noSecrets(t, p, secrets()...)
			})
		}
	}
}

// TestMicroPythonRefusesWhatItCannotVerify: MicroPython has no root store,
// so an https:// credsign without ca_file, and a TLS broker without
// broker_ca_file, are bad settings (status 2), before the token or the
// password is sent anywhere.
func TestMicroPythonRefusesWhatItCannotVerify(t *testing.T) {
	for _, rt := range runtimes {
		if !rt.isMicroPython() {
			continue
		}
		for _, name := range []string{"credsign", "broker"} {
			t.Run(rt.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t, 30*time.Second)
				srv := startServer(t, serverOptions{})
				r := srv.register(t, devices[3], nil) // Azure: always TLS
				s := settingsFor(srv, r, 0)
				want := "broker_ca_file"
				if name == "credsign" {
					s.caFile, want = "", "ca_file"
				} else {
					s.brokerCAFile = ""
				}
				p := startFor(t, rt.command(t, s), srv, r)
				if p.exitStatus(ctx, t, "the client kept running") != 2 || !strings.Contains(p.out.String(), want) {
					t.Errorf("client ended with %v, output %q; want status 2 and a line naming %s", p.err, p.out.String(), want)
				}
				if n := len(srv.exchanges()); name == "credsign" && n != 0 {
					t.Errorf("%d credentials requests; want none", n)
				}
				if a := r.emu.Snapshot().Attempts; len(a) != 0 {
					t.Errorf("%d CONNECTs to a broker the client cannot verify", len(a))
				}
			})
		}
	}
}

// TestMicroPythonSmallHeap runs the MicroPython client with a small heap
// (-X heapsize=; by default a little over the smallest measured, see
// docs/devices.md; CREDSIGN_MICROPYTHON_HEAP sets another, to measure):
// HTTPS to credsign, TLS to Azure, through a fetch, a connect, a publish,
// and a refresh while connected (both TLS sessions at once) with the
// reconnect that follows.
func TestMicroPythonSmallHeap(t *testing.T) {
	heap := os.Getenv("CREDSIGN_MICROPYTHON_HEAP")
	if heap == "" {
		heap = "84k"
	}
	for _, rt := range runtimes {
		if !rt.isMicroPython() {
			continue
		}
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 30*time.Second)
			srv := startServer(t, serverOptions{})
			r := srv.register(t, devices[3], nil)
			s := settingsFor(srv, r, 3)
			s.mpArgs = []string{"-X", "heapsize=" + heap}
			p := startFor(t, rt.command(t, s), srv, r)
			testutil.WaitFor(ctx, t, "a message after the reconnect that follows a refresh", func() bool {
				out := p.out.String()
				i := strings.LastIndex(out, "reconnecting with fresh credentials")
				return i >= 0 && strings.Contains(out[i:], "published message") || p.exited()
			})
			healthy(t, p, srv, r)
		})
	}
}
