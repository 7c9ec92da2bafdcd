package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api"
	"github.com/credsign/credsign/cloud/registration"
	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/service"
)

// TestEnrolThroughDPS: a device of an azure group with an azure-dps
// registration enrols through credsign, which registers it with the
// (emulated, verifying) Device Provisioning Service through the registrar
// of this package, learns the hub DPS assigned, and issues hub credentials
// that an emulated hub accepts with the key DPS derived on its own. A DPS
// that refuses gives 502, one that cannot be reached 503, a registration
// that cannot work 409; each gives its use back. The group key appears in
// no answer and no log line.
func TestEnrolThroughDPS(t *testing.T) {
	const scope, hub = "0ne00C0FFEE", "lamps-hub.azure-devices.net"
	keyBytes := make([]byte, 64)
	if _, err := rand.Read(keyBytes); err != nil {
		t.Fatal(err)
	}
	groupKey := base64.StdEncoding.EncodeToString(keyBytes)
	dps, err := cloudemu.StartDPS(cloudemu.DPSOptions{IDScope: scope, AssigningPolls: 1, RetryAfter: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dps.Close() })
	if err := dps.AddGroup(cloudemu.DPSGroup{Key: groupKey, Hub: hub}); err != nil {
		t.Fatal(err)
	}
	broker, err := cloudemu.Start(cloudemu.Options{Cloud: cloudemu.Azure, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })

	store, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	logs, answers := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	const admin = "csa_registrar-test-admin-0123456789"
	svc, err := service.New(service.Config{Store: store, AdminToken: admin,
		Registrar: newRegistrar(&registration.Client{HTTP: dps.Client(), Backoff: 10 * time.Millisecond, PollInterval: 20 * time.Millisecond,
			AllowPrivate: true, AllowHosts: []string{"127.0.0.1"}})})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(svc, api.Config{Logger: zerolog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	do := func(method, path, token string, body any) (int, http.Header, []byte) {
		t.Helper()
		st, h, b := testutil.Do(t, nil, method, srv.URL+path, token, body)
		answers.Write(b)
		return st, h, b
	}
	group := func(id, key, dpsHost, idScope string) {
		t.Helper()
		st, _, b := do("PUT", "/v1/groups/"+id, admin, map[string]any{
			"cloud": "azure", "secret": key,
			// host/port send the device to the emulated hub; DPS gives hubHost and deviceId.
			"params":       map[string]any{"host": broker.Host(), "port": broker.Port()},
			"registration": map[string]any{"kind": "azure-dps", "params": map[string]string{"idScope": idScope, "host": dpsHost}},
		})
		if st != 201 {
			t.Fatalf("put group %s: %d %s", id, st, b)
		}
	}
	mint := func(groupID string) (string, string) {
		t.Helper()
		st, _, b := do("POST", "/v1/groups/"+groupID+"/enrolment-tokens", admin, map[string]any{"maxUses": 5, "ttlSeconds": 600})
		var et struct{ ID, Token string }
		if err := json.Unmarshal(b, &et); st != 201 || err != nil {
			t.Fatalf("mint: %d %s", st, b)
		}
		return et.ID, et.Token
	}
	group("lamps", groupKey, dps.Addr(), scope)
	_, tok := mint("lamps")
	const regID = "lamp-dps-01"
	st, _, b := do("POST", "/v1/enrol", tok, map[string]any{"deviceId": regID})
	var enrolled struct{ DeviceID, Token string }
	if err := json.Unmarshal(b, &enrolled); st != 201 || err != nil || !strings.HasPrefix(enrolled.Token, "csd_2.") {
		t.Fatalf("enrol: %d %s", st, b)
	}
	dev, ok := dps.Device(regID)
	if !ok || dev.Hub != hub {
		t.Fatalf("DPS assigned %+v, %v", dev, ok)
	}
	var stored map[string]any
	_, _, b = do("GET", "/v1/devices/"+regID, admin, nil)
	if err := json.Unmarshal(b, &stored); err != nil || stored["params"].(map[string]any)["hubHost"] != hub {
		t.Fatalf("stored device %s", b)
	}
	// The hub knows the device by the key DPS derived.
	if err := broker.AddDevice(map[string]string{"hubHost": dev.Hub, "deviceId": dev.DeviceID}, dev.Key); err != nil {
		t.Fatal(err)
	}
	st, _, b = do("POST", "/v1/devices/"+regID+"/credentials", enrolled.Token, nil)
	var creds struct {
		ClientID, Username, Password string
		Host                         string
		Port                         int
	}
	if err := json.Unmarshal(b, &creds); st != 200 || err != nil {
		t.Fatalf("credentials: %d %s", st, b)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(broker.CAPEM())
	o := paho.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(creds.Host, strconv.Itoa(creds.Port))).SetClientID(creds.ClientID).
		SetUsername(creds.Username).SetPassword(creds.Password).SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	cl := paho.NewClient(o)
	if ct := cl.Connect(); !ct.WaitTimeout(20*time.Second) || ct.Error() != nil {
		t.Fatalf("the hub refused the enrolled device: %v", ct.Error())
	}
	cl.Disconnect(0)
	if refused, accepted := broker.AttemptsSince(time.Time{}); refused != 0 || accepted != 1 {
		t.Fatalf("hub: %d refused, %d accepted", refused, accepted)
	}

	// Failures: the status says which, and the use is given back.
	otherKey := base64.StdEncoding.EncodeToString(keyBytes[:32])
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	_ = closed.Close()
	for _, tc := range []struct {
		name, key, host, scope string
		status                 int
	}{
		{"DPS refuses a key of another group", otherKey, dps.Addr(), scope, 502},
		{"DPS cannot be reached", groupKey, closedAddr, scope, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "g-" + strconv.Itoa(tc.status)
			group(id, tc.key, tc.host, tc.scope)
			etID, tok := mint(id)
			st, hdr, b := do("POST", "/v1/enrol", tok, map[string]any{"deviceId": "lamp-" + id})
			if st != tc.status {
				t.Fatalf("enrol: %d %s, want %d", st, b, tc.status)
			}
			if st == 503 && hdr.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			_, _, b = do("GET", "/v1/groups/"+id+"/enrolment-tokens/"+etID, admin, nil)
			if !strings.Contains(string(b), `"uses":0`) {
				t.Errorf("the use was not given back: %s", b)
			}
			if st, _, _ := do("GET", "/v1/devices/lamp-"+id, admin, nil); st != 404 {
				t.Errorf("a device was created: %d", st)
			}
		})
	}
	// A registration that cannot work is refused when the group is written.
	st, _, b = do("PUT", "/v1/groups/bad", admin, map[string]any{
		"cloud": "azure", "secret": groupKey, "params": map[string]any{},
		"registration": map[string]any{"kind": "azure-dps", "params": map[string]string{"idScope": "not a scope!", "colour": "red"}},
	})
	if st != 422 || !strings.Contains(string(b), `"registration.params.idScope"`) || !strings.Contains(string(b), `"registration.params.colour"`) {
		t.Errorf("group with a bad registration: %d %s", st, b)
	}
	st, _, b = do("PUT", "/v1/groups/bad", admin, map[string]any{
		"cloud": "tencent", "secret": "short", "params": map[string]any{},
		"registration": map[string]any{"kind": "tencent-dynamic", "params": map[string]string{"productId": "ABCDEFGHIJ"}},
	})
	if st != 422 || !strings.Contains(string(b), `"field":"secret"`) || strings.Contains(string(b), "short") {
		t.Errorf("group with a product secret too short: %d %s", st, b)
	}
	for what, s := range map[string]string{"answers": answers.String(), "logs": logs.String()} {
		for _, secret := range []string{groupKey, otherKey, dev.Key, "SharedAccessSignature sr=" + scope} {
			if strings.Contains(s, secret) {
				t.Errorf("a secret appears in the %s", what)
			}
		}
	}
}

// The registrar maps each of the registration package's failures to the
// service error that sets the caller's status.
func TestRegistrarErrors(t *testing.T) {
	r := newRegistrar(&registration.Client{Attempts: 1, Backoff: time.Millisecond, AllowPrivate: true, AllowHosts: []string{"127.0.0.1"}})
	strict := newRegistrar(&registration.Client{Attempts: 1, Backoff: time.Millisecond})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	_ = closed.Close()
	key := base64.StdEncoding.EncodeToString([]byte("group-key-of-32-bytes-for-a-test"))
	for _, tc := range []struct {
		name   string
		r      service.Registrar
		params map[string]string
		want   error
	}{
		{"invalid params", r, map[string]string{"idScope": "not a scope!"}, service.ErrRegistrationInvalid},
		{"unreachable", r, map[string]string{"idScope": "0ne00C0FFEE", "host": addr}, service.ErrCloudUnreachable},
		{"loopback, by default", strict, map[string]string{"idScope": "0ne00C0FFEE", "host": addr}, service.ErrRegistrationInvalid},
		{"localhost, by default", strict, map[string]string{"idScope": "0ne00C0FFEE", "host": "localhost"}, service.ErrRegistrationInvalid},
		{"metadata address, by default", strict, map[string]string{"idScope": "0ne00C0FFEE", "host": "169.254.169.254"}, service.ErrRegistrationInvalid},
	} {
		_, err := tc.r.Register(context.Background(), service.RegistrationRequest{Kind: "azure-dps", Params: tc.params, GroupSecret: key, DeviceID: "d"})
		if !errors.Is(err, tc.want) || strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// startDPS starts the DPS emulator of ID scope with one enrolment group,
// whose key (returned, base64) is keyText, assigning its devices to hub.
// caFile holds the CA of the emulator's certificate.
func startDPS(t *testing.T, scope, keyText, hub string) (dps *cloudemu.DPS, groupKey, caFile string) {
	t.Helper()
	dps, err := cloudemu.StartDPS(cloudemu.DPSOptions{IDScope: scope, RetryAfter: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dps.Close() })
	groupKey = base64.StdEncoding.EncodeToString([]byte(keyText))
	if err := dps.AddGroup(cloudemu.DPSGroup{Key: groupKey, Hub: hub}); err != nil {
		t.Fatal(err)
	}
	return dps, groupKey, testutil.WriteFile(t, "cloud-ca.pem", dps.CAPEM())
}

// TestServeCloudCA: `serve --cloud-ca-file` makes the registrar trust a
// cloud endpoint signed by that CA (here the emulated DPS); without it the
// same enrolment fails as a cloud that cannot be reached, with its use given
// back; a file with no certificate stops serve with one line.
func TestServeCloudCA(t *testing.T) {
	const scope = "0ne00CAFE01"
	dps, groupKey, caFile := startDPS(t, scope, "a group key of the serve test, 32+ bytes long", "serve-hub.azure-devices.net")
	env := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}
	for _, tc := range []struct {
		name   string
		args   []string
		status int
	}{
		{"trusted", []string{"--cloud-ca-file", caFile, "--registration-allow-private", "--registration-allow-host", "127.0.0.1"}, 201},
		{"untrusted", []string{"--registration-allow-private", "--registration-allow-host", "127.0.0.1"}, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startServe(t, env, tc.args...)
			base := "http://" + r.addr
			group := map[string]any{"cloud": "azure", "secret": groupKey, "params": map[string]any{},
				"registration": map[string]any{"kind": "azure-dps", "params": map[string]string{"idScope": scope, "host": dps.Addr()}}}
			if code := call(t, http.DefaultClient, "PUT", base+"/v1/groups/g", srvAdmin, group, nil); code != 201 {
				t.Fatalf("put group: %d", code)
			}
			var et struct{ Token string }
			if code := call(t, http.DefaultClient, "POST", base+"/v1/groups/g/enrolment-tokens", srvAdmin, map[string]any{"maxUses": 1, "ttlSeconds": 60}, &et); code != 201 {
				t.Fatalf("mint: %d", code)
			}
			if code := call(t, http.DefaultClient, "POST", base+"/v1/enrol", et.Token, map[string]any{"deviceId": "dev-" + tc.name}, nil); code != tc.status {
				t.Fatalf("enrol: %d, want %d", code, tc.status)
			}
		})
	}
	t.Run("not a certificate", func(t *testing.T) {
		bad := testutil.WriteFile(t, "bad.pem", []byte("not PEM\n"))
		code, out := serveNoStart(env, "--data-dir", t.TempDir(), "--cloud-ca-file", bad)
		out = strings.TrimSpace(out)
		if code != exitUsage || strings.Count(out, "\n") != 0 || !strings.Contains(out, "--cloud-ca-file") {
			t.Fatalf("exit %d, stderr %q; want exit 2 and one line naming the flag", code, out)
		}
	})
}

// TestServeRegistrationPolicy: by default serve's registrar calls only the
// clouds' documented domains and public addresses. A group naming a
// loopback address, or a name outside those domains, is refused when
// written (422 naming registration.params.host); a name the operator
// allowed (--registration-allow-host localhost) that resolves to loopback
// is refused when dialled (409, nothing reaches the DPS emulator, the use
// is given back, one log line names the cause without the group key or
// SAS); with --registration-allow-private the same enrolment succeeds. A
// registration kind of another cloud is refused too, and a malformed
// --registration-allow-host stops serve with one line. The enrolled device,
// whose key is derived from the group key, is diagnosed by the doctor with
// that key. On the embedded store here, on Vault in
// TestServeRegistrationPolicyVault (one store for every subtest there, so
// each uses its own group).
func TestServeRegistrationPolicy(t *testing.T) {
	registrationPolicy(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin})
}

// registrationPolicy is TestServeRegistrationPolicy with serve's
// environment env.
func registrationPolicy(t *testing.T, env map[string]string) {
	const scope = "0ne00CAFE02"
	dps, groupKey, caFile := startDPS(t, scope, "a group key of the policy test, 32+ bytes", "policy-hub.azure-devices.net")
	_, port, _ := net.SplitHostPort(dps.Addr())
	group := func(cloud, kind, host string) map[string]any {
		return map[string]any{"cloud": cloud, "secret": groupKey, "params": map[string]any{},
			"registration": map[string]any{"kind": kind, "params": map[string]string{"idScope": scope, "host": host}}}
	}
	putGroup := func(t *testing.T, base, id string, doc map[string]any) (int, string) {
		t.Helper()
		status, _, out := testutil.Do(t, nil, "PUT", base+"/v1/groups/"+id, srvAdmin, doc)
		return status, string(out)
	}
	enrol := func(t *testing.T, base, groupID, device string) (int, string) {
		t.Helper()
		var et struct{ ID, Token string }
		if code := call(t, http.DefaultClient, "POST", base+"/v1/groups/"+groupID+"/enrolment-tokens", srvAdmin, map[string]any{"maxUses": 1, "ttlSeconds": 60}, &et); code != 201 {
			t.Fatalf("mint: %d", code)
		}
		code := call(t, http.DefaultClient, "POST", base+"/v1/enrol", et.Token, map[string]any{"deviceId": device}, nil)
		var info map[string]any
		call(t, http.DefaultClient, "GET", base+"/v1/groups/"+groupID+"/enrolment-tokens/"+et.ID, srvAdmin, nil, &info)
		return code, fmt.Sprint(info["uses"])
	}

	t.Run("default", func(t *testing.T) {
		base := "http://" + startServe(t, env, "--cloud-ca-file", caFile).addr
		for _, tc := range []struct{ cloud, kind, host, want string }{
			{"azure", "azure-dps", dps.Addr(), "127.0.0.1 is a loopback address"},
			{"azure", "azure-dps", "[::1]:" + port, "::1 is a loopback address"},
			{"azure", "azure-dps", "169.254.169.254", "169.254.169.254 is a link-local address"},
			{"azure", "azure-dps", "10.0.0.8:443", "10.0.0.8 is a private address"},
			{"azure", "azure-dps", "localhost:" + port, "localhost is not a documented azure-dps host"},
			{"azure", "azure-dps", "dps.example.com", "dps.example.com is not a documented azure-dps host"},
		} {
			code, body := putGroup(t, base, "g", group(tc.cloud, tc.kind, tc.host))
			if code != 422 || !strings.Contains(body, `"registration.params.host"`) || !strings.Contains(body, tc.want) {
				t.Errorf("group with host %s: %d %s, want 422 naming %q", tc.host, code, body, tc.want)
			}
		}
		code, body := putGroup(t, base, "g", map[string]any{"cloud": "azure", "secret": groupKey, "params": map[string]any{},
			"registration": map[string]any{"kind": "aliyun-dynamic", "params": map[string]string{"productKey": "a1pk"}}})
		if code != 422 || !strings.Contains(body, "aliyun-dynamic registers aliyun devices, but the group's cloud is azure") {
			t.Errorf("azure group with aliyun-dynamic: %d %s", code, body)
		}
	})
	t.Run("allowed name resolving to loopback", func(t *testing.T) {
		r := startServe(t, env, "--cloud-ca-file", caFile, "--registration-allow-host", "localhost")
		base := "http://" + r.addr
		if code, body := putGroup(t, base, "g-loopback", group("azure", "azure-dps", "localhost:"+port)); code != 201 {
			t.Fatalf("put group: %d %s", code, body)
		}
		before := len(dps.Requests())
		code, uses := enrol(t, base, "g-loopback", "dev-loopback")
		if code != 409 || uses != "0" {
			t.Fatalf("enrol: %d, uses %s; want 409 and the use given back", code, uses)
		}
		if n := len(dps.Requests()) - before; n != 0 {
			t.Fatalf("the DPS emulator got %d requests", n)
		}
		var line string
		testutil.Eventually(t, 5*time.Second, func() error {
			for _, l := range strings.Split(r.stderr.String(), "\n") { // written in batches (--log-flush-interval)
				if strings.Contains(l, "registration with the cloud failed") {
					line = l
					return nil
				}
			}
			return errors.New("no log line says the registration failed")
		})
		for _, want := range []string{`"deviceId":"dev-loopback"`, `"group":"g-loopback"`, `"registration":"azure-dps"`, "a loopback address, not a public address", "--registration-allow-private"} {
			if !strings.Contains(line, want) {
				t.Errorf("log line %q lacks %q", line, want)
			}
		}
		if s := r.stderr.String(); strings.Contains(s, groupKey) || strings.Contains(s, "SharedAccessSignature") {
			t.Error("the group key or a SAS was logged")
		}
	})
	t.Run("allowed name and private addresses", func(t *testing.T) {
		base := "http://" + startServe(t, env, "--cloud-ca-file", caFile, "--registration-allow-host", "localhost,127.0.0.1", "--registration-allow-private").addr
		if code, body := putGroup(t, base, "g-allowed", group("azure", "azure-dps", "localhost:"+port)); code != 201 {
			t.Fatalf("put group: %d %s", code, body)
		}
		if code, uses := enrol(t, base, "g-allowed", "dev-allowed"); code != 201 || uses != "1" {
			t.Fatalf("enrol: %d, uses %s", code, uses)
		}
		// The doctor derives the device's key from the group key, as issuing does.
		var cr struct {
			ClientID, Username, Password string
			IssuedAt                     time.Time
		}
		if code := call(t, http.DefaultClient, "POST", base+"/v1/devices/dev-allowed/credentials", srvAdmin, nil, &cr); code != 200 {
			t.Fatalf("credentials: %d", code)
		}
		var dg struct{ Match bool }
		if code := call(t, http.DefaultClient, "POST", base+"/v1/devices/dev-allowed/doctor", srvAdmin,
			map[string]any{"clientId": cr.ClientID, "username": cr.Username, "password": cr.Password, "at": cr.IssuedAt}, &dg); code != 200 || !dg.Match {
			t.Fatalf("doctor of the enrolled device: %d, match %t", code, dg.Match)
		}
	})
	t.Run("bad flag", func(t *testing.T) {
		for _, v := range []string{"https://dps.example.com", "*", "dps.example.com:443"} {
			code, out := serveNoStart(env, "--data-dir", t.TempDir(), "--registration-allow-host", v)
			out = strings.TrimSpace(out)
			if code != exitUsage || strings.Count(out, "\n") != 0 || !strings.Contains(out, "registration-allow-host") {
				t.Errorf("--registration-allow-host %s: exit %d, stderr %q; want exit 2 and one line naming the flag", v, code, out)
			}
		}
	})
}
