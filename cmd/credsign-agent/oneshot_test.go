package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/e2e"
)

// listen listens on a free loopback port until the test ends.
func listen(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	ln, port := listen(t)
	_ = ln.Close()
	return port
}

// oneLine fails t unless s is exactly one line, plain text (not a JSON log
// record), holding every one of want.
func oneLine(t *testing.T, s string, want ...string) {
	t.Helper()
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") || strings.HasPrefix(s, "{") {
		t.Fatalf("stderr %q: want one plain line", s)
	}
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Fatalf("stderr %q: want %q in it", s, w)
		}
	}
}

// The one-shot commands stop at once, with status 1 and one line naming
// the cause, on what waiting will not clear: a refusal from credsign (the
// problem's reason included), a missing or empty token file, a broker that
// refuses the credentials (CONNACK 4 from the emulated hub, CONNACK 5 from
// Mosquitto).
func TestOneShotCommandsStopOnPermanentErrors(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	wrongToken := filepath.Join(dir, "wrong.token")
	emptyToken := filepath.Join(dir, "empty.token")
	for file, content := range map[string]string{wrongToken: "csd_wrong_token_value\n", emptyToken: "\n"} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A Huawei device: credsign refuses a TTL above Huawei's limit (422).
	hwToken := f.svc.Register("lamp-huawei", "huawei", map[string]any{"deviceId": "prod_lamp", "host": "127.0.0.1", "port": closedPort(t), "tls": false}, "s3cret-huawei")
	// Registered with a key the hub does not know: CONNACK 5.
	badKeyToken := f.register("lamp-badkey", otherKey, f.emu.Host(), f.emu.Port())
	// Reaching a Mosquitto that lets no one in: CONNACK 5 as well.
	m := e2e.StartMosquitto(t, e2e.MosquittoOptions{Refuse: true})
	// A broker answering CONNACK 4: neither the emulator nor Mosquitto sends
	// it to an MQTT 3.1.1 client (both refuse bad passwords with 5), so this
	// one is a fake.
	refuse4Token := f.svc.Register("lamp-refuse4", "aliyun", map[string]any{"productKey": "a1pk", "deviceName": "lamp", "host": "127.0.0.1", "port": connack4Broker(t), "secureMode": 3}, "s3cret")
	mosqToken := f.svc.Register("lamp-mosq", "aliyun", map[string]any{"productKey": "a1pk", "deviceName": "lamp", "host": "127.0.0.1", "port": m.Port, "secureMode": 3}, "s3cret")

	pub := []string{"pub", "--broker-ca-file", f.caFile, "-t", "devices/lamp/messages/events/", "-m", "x"}
	sub := []string{"sub", "--broker-ca-file", f.caFile, "-t", "devices/lamp/messages/devicebound/#"}
	creds := []string{"creds"}
	tests := []struct {
		name          string
		device, token string
		extra         []string
		cmds          [][]string
		want          []string
	}{
		{"wrong token", "lamp", wrongToken, nil, [][]string{creds, pub, sub},
			[]string{"credsign answered 401 Unauthorized", "(check --device, and the token in --token-file)"}},
		{"unknown device", "lamp-nobody", f.tokenFile, nil, [][]string{creds, pub, sub}, []string{"credsign answered 40"}},
		{"ttl too long", "lamp-huawei", hwToken, []string{"--ttl", "2h"}, [][]string{creds, pub, sub},
			[]string{"credsign answered 422", "longer than huawei allows"}},
		{"missing token file", "lamp", filepath.Join(dir, "none"), nil, [][]string{creds, pub, sub},
			[]string{"no device token: open " + filepath.Join(dir, "none")}},
		{"empty token file", "lamp", emptyToken, nil, [][]string{creds, pub, sub},
			[]string{"no device token: token file " + emptyToken + " is empty"}},
		{"emulated hub refuses", "lamp-badkey", badKeyToken, nil, [][]string{pub, sub},
			[]string{"broker rejected the credentials", "refused CONNECT of azure device lamp-badkey", "not Authorized"}},
		{"CONNACK 4", "lamp-refuse4", refuse4Token, nil, [][]string{pub, sub},
			[]string{"broker rejected the credentials", "refused CONNECT of aliyun device lamp-refuse4", "bad user name or password"}},
		{"Mosquitto refuses", "lamp-mosq", mosqToken, nil, [][]string{pub, sub},
			[]string{"broker rejected the credentials", "refused CONNECT of aliyun device lamp-mosq", "not Authorized"}},
	}
	for _, tt := range tests {
		for _, args := range tt.cmds {
			t.Run(tt.name+"/"+args[0], func(t *testing.T) {
				ctx := testCtx(t)
				getenv := env(map[string]string{"CREDSIGN_SERVER": f.server, "CREDSIGN_DEVICE": tt.device, "CREDSIGN_TOKEN_FILE": tt.token})
				start := time.Now()
				r := runWith(ctx, nil, getenv, append(append([]string{}, args...), tt.extra...)...)
				if took := time.Since(start); took > 10*time.Second {
					t.Fatalf("%s took %s: it retried", args[0], took)
				}
				if r.code != 1 {
					t.Fatalf("exit %d, stderr %q; want 1", r.code, r.stderr)
				}
				oneLine(t, r.stderr, append([]string{"credsign-agent " + args[0] + ": "}, tt.want...)...)
				if strings.Contains(r.stdout+r.stderr, "csd_wrong_token_value") {
					t.Fatal("the token was printed")
				}
			})
		}
	}
}

// run and exec keep retrying what a one-shot command gives up on, and log
// the same cause, with the problem's reason, at each try, as JSON records
// with the server's field names.
func TestRunAndExecRetryAndLogTheCause(t *testing.T) {
	f := newFixture(t)
	hwToken := f.svc.Register("lamp-huawei", "huawei", map[string]any{"deviceId": "prod_lamp", "host": "127.0.0.1", "port": closedPort(t), "tls": false}, "s3cret-huawei")
	getenv := env(map[string]string{"CREDSIGN_SERVER": f.server, "CREDSIGN_DEVICE": "lamp-huawei", "CREDSIGN_TOKEN_FILE": hwToken, "CREDSIGN_TTL": "2h"})
	for _, args := range [][]string{{"run"}, {"exec", "--", "true"}} {
		t.Run(args[0], func(t *testing.T) {
			// The default back-off (ceilings 1s, 2s, …) fits two or more tries in 4s.
			ctx, cancel := context.WithTimeout(testCtx(t), 4*time.Second)
			defer cancel()
			r := runWith(ctx, nil, getenv, args...)
			if r.code != 0 {
				t.Fatalf("exit %d after the signal, stderr %q", r.code, r.stderr)
			}
			tries := 0
			for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("log line %q is not JSON: %v", line, err)
				}
				if rec["level"] == nil || rec["time"] == nil || rec["message"] == nil {
					t.Fatalf("log line %q lacks level, time or message", line)
				}
				if e, _ := rec["error"].(string); strings.Contains(e, "credsign answered 422") && strings.Contains(e, "longer than huawei allows") {
					tries++
				}
			}
			if tries < 2 {
				t.Fatalf("%d logged tries naming the 422 and its reason, want 2 or more; stderr:\n%s", tries, r.stderr)
			}
		})
	}
}

// --timeout ends a one-shot command that cannot get through, with one line
// naming the last failure.
func TestOneShotTimeout(t *testing.T) {
	f := newFixture(t)
	downToken := f.register("lamp-down", azureKey, "127.0.0.1", closedPort(t))
	broker := env(map[string]string{"CREDSIGN_SERVER": f.server, "CREDSIGN_DEVICE": "lamp-down", "CREDSIGN_TOKEN_FILE": downToken})
	server := env(map[string]string{"CREDSIGN_SERVER": "http://127.0.0.1:" + strconv.Itoa(closedPort(t)), "CREDSIGN_DEVICE": "lamp", "CREDSIGN_TOKEN_FILE": f.tokenFile})
	tests := []struct {
		name   string
		getenv func(string) string
		args   []string
		want   string
	}{
		{"pub, broker down", broker, []string{"pub", "--timeout", "1s", "-t", "x", "-m", "x"}, "connection refused"},
		{"sub, broker down", broker, []string{"sub", "--timeout", "1s", "-t", "x"}, "connection refused"},
		{"creds, credsign down", server, []string{"creds", "--timeout", "1s"}, "connection refused"},
		{"pub, credsign down", server, []string{"pub", "--timeout", "1s", "-t", "x", "-m", "x"}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r := runWith(testCtx(t), nil, tt.getenv, tt.args...)
			took := time.Since(start)
			if r.code != 1 || took < time.Second || took > 10*time.Second {
				t.Fatalf("exit %d after %s, stderr %q; want 1 after about 1s", r.code, took, r.stderr)
			}
			oneLine(t, r.stderr, "credsign-agent "+tt.args[0]+": timed out after 1s (--timeout); last error: ", tt.want)
		})
	}
	// Once subscribed, sub's --timeout no longer runs: it waits for messages.
	t.Run("sub, subscribed", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testCtx(t), 3*time.Second)
		defer cancel()
		r := f.run(ctx, nil, "sub", "--timeout", "1s", "--broker-ca-file", f.caFile, "-t", "devices/lamp/messages/devicebound/#")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q; want sub still running at the signal", r.code, r.stderr)
		}
	})
}

// connack4Broker listens on loopback and answers every MQTT CONNECT with
// CONNACK return code 4 (bad user name or password); it returns the port.
func connack4Broker(t *testing.T) int {
	return fakeBroker(t, func(conn net.Conn) {
		if _, err := packets.ReadPacket(conn); err != nil {
			return
		}
		ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
		ack.ReturnCode = packets.ErrRefusedBadUsernameOrPassword
		_ = ack.Write(conn)
	})
}

// fakeBroker listens on loopback and hands each connection to serve, for
// at most 10 s, then closes it; it returns the port.
func fakeBroker(t *testing.T, serve func(conn net.Conn)) int {
	ln, port := listen(t)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				serve(conn)
			}()
		}
	}()
	return port
}

// tlsOnlyBroker serves TLS handshakes on loopback with a self-signed
// certificate made by edit from a template valid for 127.0.0.1 now, and
// returns its port and a CA file trusting that certificate. It is a fake
// (no MQTT behind it): the failures it stands for (a certificate for
// another name, an expired one) end the handshake before any MQTT.
func tlsOnlyBroker(t *testing.T, edit func(*x509.Certificate)) (int, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "fake-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	return fakeBroker(t, func(conn net.Conn) { _ = tls.Server(conn, cfg).Handshake() }), caFile
}

// A broker certificate that does not verify (an authority not trusted, a
// certificate for another name, an expired one) will not clear by waiting:
// pub and sub stop at once, with status 1 and one line naming it, instead of
// retrying until --timeout. run, a device in the field, keeps retrying.
func TestOneShotCommandsStopOnBrokerCertificate(t *testing.T) {
	f := newFixture(t)
	otherCA, err := cloudemu.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	otherCAFile := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(otherCAFile, otherCA.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	namePort, nameCA := tlsOnlyBroker(t, func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 2)} })
	expiredPort, expiredCA := tlsOnlyBroker(t, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	})
	nameToken := f.register("lamp-name", azureKey, "127.0.0.1", namePort)
	expiredToken := f.register("lamp-expired", azureKey, "127.0.0.1", expiredPort)
	tests := []struct {
		name, device, token, caFile string
		want                        string
	}{
		{"unknown authority", "lamp", f.tokenFile, otherCAFile, "certificate signed by unknown authority"},
		{"another name", "lamp-name", nameToken, nameCA, "certificate is valid for 127.0.0.2, not 127.0.0.1"},
		{"expired", "lamp-expired", expiredToken, expiredCA, "certificate has expired"},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{
			{"pub", "-t", "devices/lamp/messages/events/", "-m", "x"},
			{"sub", "-t", "devices/lamp/messages/devicebound/#"},
		} {
			t.Run(tt.name+"/"+cmd[0], func(t *testing.T) {
				getenv := env(map[string]string{"CREDSIGN_SERVER": f.server, "CREDSIGN_DEVICE": tt.device, "CREDSIGN_TOKEN_FILE": tt.token})
				start := time.Now()
				r := runWith(testCtx(t), nil, getenv, append(cmd, "--broker-ca-file", tt.caFile, "--timeout", "30s")...)
				if took := time.Since(start); took > 10*time.Second {
					t.Fatalf("%s took %s: it retried", cmd[0], took)
				}
				if r.code != 1 {
					t.Fatalf("exit %d, stderr %q; want 1", r.code, r.stderr)
				}
				oneLine(t, r.stderr, "credsign-agent "+cmd[0]+": ", "the broker's TLS certificate was not accepted", tt.want, "(check --broker-ca-file")
			})
		}
	}
	t.Run("run retries", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testCtx(t), 3*time.Second)
		defer cancel()
		getenv := env(map[string]string{"CREDSIGN_SERVER": f.server, "CREDSIGN_DEVICE": "lamp-expired", "CREDSIGN_TOKEN_FILE": expiredToken})
		r := runWith(ctx, nil, getenv, "run", "--broker-ca-file", expiredCA)
		if n := strings.Count(r.stderr, "certificate has expired"); n < 2 {
			t.Fatalf("run logged the expired certificate %d times in 3s, want retries: %q", n, r.stderr)
		}
	})
}

// The same for credsign's own certificate: creds, pub, sub and enrol stop
// at once with one line when the server's certificate is of an authority
// --ca-file does not hold. The server is a fake (the handshake fails before
// any request), the failure a real one would give.
func TestOneShotCommandsStopOnServerCertificate(t *testing.T) {
	port, _ := tlsOnlyBroker(t, func(*x509.Certificate) {})
	dir := t.TempDir()
	for name, content := range map[string]string{"device.token": "csd_2.some-device-token-text\n", "enrol.token": "cse_x.some-enrolment-token\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	getenv := env(map[string]string{"CREDSIGN_SERVER": "https://127.0.0.1:" + strconv.Itoa(port), "CREDSIGN_DEVICE": "lamp",
		"CREDSIGN_TOKEN_FILE": filepath.Join(dir, "device.token")})
	for _, args := range [][]string{
		{"creds"},
		{"pub", "-t", "t", "-m", "x"},
		{"sub", "-t", "t"},
		{"enrol", "--enrolment-token-file", filepath.Join(dir, "enrol.token"), "--token-file", filepath.Join(dir, "new.token")},
	} {
		t.Run(args[0], func(t *testing.T) {
			start := time.Now()
			r := runWith(testCtx(t), nil, getenv, append(args, "--timeout", "30s")...)
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("%s took %s: it retried", args[0], took)
			}
			if r.code != 1 {
				t.Fatalf("exit %d, stderr %q; want 1", r.code, r.stderr)
			}
			oneLine(t, r.stderr, "credsign-agent "+args[0]+": ", "certificate signed by unknown authority", "(check --ca-file, and --server)")
			if strings.Contains(r.stderr, "some-device-token-text") || strings.Contains(r.stderr, "some-enrolment-token") {
				t.Fatal("a token was printed")
			}
		})
	}
}
