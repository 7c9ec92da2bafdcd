package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
)

var adminListenLine = regexp.MustCompile(`"adminAddr":"([^"]+)"[^\n]*"message":"listening"`)

// startPlanes runs serve with a device plane and an admin plane and
// returns it with the two base URLs.
func startPlanes(t *testing.T, env map[string]string, args ...string) (r *running, device, admin string) {
	t.Helper()
	r = startServe(t, env, append([]string{"--admin-addr", "127.0.0.1:0"}, args...)...)
	m := adminListenLine.FindStringSubmatch(r.stderr.String())
	if m == nil {
		t.Fatalf("the listening line has no adminAddr:\n%s", r.stderr)
	}
	return r, "http://" + r.addr, "http://" + m[1]
}

// TestServeTwoPlanes: with --admin-addr, --addr answers what devices
// call and 404s the rest (admin operations and /metrics), the admin
// address answers the rest; an admin token changes nothing to that.
func TestServeTwoPlanes(t *testing.T) {
	env := map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}
	_, device, admin := startPlanes(t, env)
	c := http.DefaultClient
	azure := map[string]any{"cloud": "azure", "params": map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "d1"},
		"secret": "YXp1cmUtZGV2aWNlLWtleS0zMi1ieXRlcy1sb25nISE="}
	for _, tc := range []struct {
		base, method, path string
		want               int
	}{
		{device, "PUT", "/v1/devices/d1", 404},
		{admin, "PUT", "/v1/devices/d1", 201},
		{device, "GET", "/v1/devices", 404},
		{device, "POST", "/v1/tokens", 404},
		{device, "GET", "/metrics", 404},
		{device, "GET", "/openapi.yaml", 404},
		{device, "GET", "/docs", 404},
		{device, "GET", "/v1/admin/backup", 404},
		{admin, "GET", "/metrics", 200},
		{admin, "GET", "/openapi.yaml", 200},
		{admin, "GET", "/docs", 200},
		{device, "GET", "/healthz", 200},
		{admin, "GET", "/healthz", 200},
		{device, "GET", "/readyz", 200},
		{device, "GET", "/.well-known/jwks.json", 200},
		{admin, "GET", "/.well-known/jwks.json", 404},
		{admin, "POST", "/v1/enrol", 404},
		{device, "POST", "/v1/devices/d1/credentials", 200},
	} {
		var body any
		if tc.method == "PUT" {
			body = azure
		}
		if got := call(t, c, tc.method, tc.base+tc.path, srvAdmin, body, nil); got != tc.want {
			t.Errorf("%s %s on %s: %d, want %d", tc.method, tc.path, tc.base, got, tc.want)
		}
	}
	var tok struct{ Token string }
	if code := call(t, c, "POST", admin+"/v1/devices/d1/tokens", srvAdmin, nil, &tok); code != 201 {
		t.Fatalf("mint: %d", code)
	}
	if code := call(t, c, "POST", device+"/v1/devices/d1/credentials", tok.Token, nil, nil); code != 200 {
		t.Errorf("device issues on the device plane: %d", code)
	}
}

// TestServePlaneFlagErrors: the admin plane's settings are checked like
// the device plane's.
func TestServePlaneFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--admin-addr", "0.0.0.0:0"}, "refusing plain HTTP on 0.0.0.0:0"},
		{[]string{"--admin-addr", "127.0.0.1:0", "--admin-tls-cert", "x.pem"}, "--admin-tls-cert and --admin-tls-key go together"},
		{[]string{"--admin-addr", "127.0.0.1:0", "--admin-client-ca", "ca.pem"}, "--admin-client-ca needs"},
		{[]string{"--admin-tls-cert", "x.pem", "--admin-tls-key", "k.pem"}, "need --admin-addr"},
		{[]string{"--addr", "127.0.0.1:9999", "--admin-addr", "127.0.0.1:9999"}, "must differ"},
		{[]string{"--admin-addr", "nonsense"}, `--admin-addr "nonsense"`},
		{[]string{"--access-log-sample", "-1"}, "--access-log-sample is a count"},
	} {
		var errb testutil.SyncBuffer
		args := append(c.args, "--data-dir", t.TempDir())
		code := serve(t.Context(), args, func(k string) string { return map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}[k] }, io.Discard, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), exitUsage, c.msg)
		}
	}
}

// TestServeAdminPlaneTLS: the admin plane has its own certificate and
// client CA; the device plane stays plain (on loopback) and open.
func TestServeAdminPlaneTLS(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	cert, key := pki.issue(t, 7, false)
	ccert, ckey := pki.issue(t, 8, true)
	writeFile(t, filepath.Join(dir, "admin.pem"), cert)
	writeFile(t, filepath.Join(dir, "admin.key"), key)
	writeFile(t, filepath.Join(dir, "ca.pem"), pki.pem)
	r, device, _ := startPlanes(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin},
		"--admin-tls-cert", filepath.Join(dir, "admin.pem"), "--admin-tls-key", filepath.Join(dir, "admin.key"),
		"--admin-client-ca", filepath.Join(dir, "ca.pem"))
	adminAddr := adminListenLine.FindStringSubmatch(r.stderr.String())[1]
	if !strings.Contains(r.stderr.String(), `"adminUrl":"https://`) || !strings.Contains(r.stderr.String(), `"url":"http://`) {
		t.Errorf("the listening line does not say the admin plane is https and the device plane http:\n%s", r.stderr)
	}
	if code := call(t, http.DefaultClient, "GET", device+"/healthz", "", nil, nil); code != 200 {
		t.Errorf("device plane /healthz: %d", code)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.cert)
	pair, err := tls.X509KeyPair(ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}
	if got := servedSerial(t, adminAddr, withCert); got != 7 {
		t.Errorf("admin plane serves certificate %d, want 7", got)
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if res, err := noCert.Get("https://" + adminAddr + "/healthz"); err == nil {
		res.Body.Close()
		t.Error("the admin plane served a client without a certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: withCert}}
	if v := metricValue(t, client, "https://"+adminAddr, "credsign_admin_tls_certificate_expiry_timestamp_seconds"); !(v > float64(time.Now().Unix())) {
		t.Errorf("credsign_admin_tls_certificate_expiry_timestamp_seconds = %v", v)
	}
}

// TestServeHelpGroups: -h shows every flag once, in its group.
func TestServeHelpGroups(t *testing.T) {
	var out strings.Builder
	if _, err := parseServeFlags([]string{"-h"}, &out); err == nil {
		t.Fatal("-h: no ErrHelp")
	}
	seen := map[string]int{}
	for _, g := range serveFlagGroups() {
		for _, n := range g.names {
			seen[n]++
		}
		if !strings.Contains(out.String(), "\n"+g.title+":\n") {
			t.Errorf("-h lacks the group %q", g.title)
		}
	}
	defined := 0
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "  --") {
			defined++
		}
	}
	for n, k := range seen {
		if k != 1 {
			t.Errorf("--%s is in %d groups", n, k)
		}
	}
	if defined != len(seen) {
		t.Errorf("-h shows %d flags, the groups hold %d", defined, len(seen))
	}
	for _, v := range vaultEnv {
		if !strings.Contains(out.String(), "  "+v[0]+"\n") {
			t.Errorf("-h does not list %s", v[0])
		}
	}
}

// readAudit returns the events of an audit file, checking each line.
func readAudit(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if ev["audit"] != true || ev["event"] == nil || ev["time"] == nil {
			t.Errorf("audit line without audit, event or time: %s", sc.Text())
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestServeAuditFile runs a script of security actions through both
// planes and checks that --audit-file holds exactly the events they
// cause, one per action (an enrolment mints the device's token: two),
// none for refused requests, and that the diagnostic log holds none.
func TestServeAuditFile(t *testing.T) {
	old := adminTokenPoll
	adminTokenPoll = 20 * time.Millisecond
	t.Cleanup(func() { adminTokenPoll = old })
	dir := t.TempDir()
	auditPath, tokFile := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "admin-tokens")
	writeFile(t, tokFile, []byte(srvAdmin+"\n"))
	r, device, admin := startPlanes(t, nil, "--audit-file", auditPath, "--admin-token-file", tokFile)
	c := http.DefaultClient
	var want []string
	step := func(method, base, path, token string, body any, status int, events ...string) map[string]any {
		t.Helper()
		var out map[string]any
		var dst any = &out
		if status == 204 || status >= 400 {
			dst = nil
		}
		if got := call(t, c, method, base+path, token, body, dst); got != status {
			t.Fatalf("%s %s: %d, want %d", method, path, got, status)
		}
		want = append(want, events...)
		return out
	}
	prov := step("POST", admin, "/v1/tokens", srvAdmin, map[string]any{"role": "provisioner"}, 201, "token.created")
	provTok := prov["token"].(string)
	step("PUT", admin, "/v1/devices/d1", provTok, map[string]any{"cloud": "azure", "params": map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "d1"},
		"secret": "YXp1cmUtZGV2aWNlLWtleS0zMi1ieXRlcy1sb25nISE="}, 201, "device.put")
	dev := step("POST", admin, "/v1/devices/d1/tokens", provTok, nil, 201, "token.created")
	step("POST", device, "/v1/devices/d1/credentials", dev["token"].(string), nil, 200, "credentials.issued")
	step("POST", admin, "/v1/devices/nope/tokens", provTok, nil, 404) // refused: no event
	step("DELETE", admin, "/v1/devices/d1/tokens/"+dev["id"].(string), provTok, nil, 204, "token.revoked")
	step("POST", device, "/v1/devices/d1/credentials", dev["token"].(string), nil, 401) // revoked: no event
	step("PUT", admin, "/v1/groups/g1", provTok, map[string]any{"cloud": "azure", "params": map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "{deviceId}"},
		"secret": "Z3JvdXAta2V5LW9mLXRoZS1maXh0dXJlLTMyYnl0ZXM="}, 201, "group.put")
	et := step("POST", admin, "/v1/groups/g1/enrolment-tokens", provTok, map[string]any{"maxUses": 2, "ttlSeconds": 600}, 201, "enrolment_token.created")
	step("POST", device, "/v1/enrol", et["token"].(string), map[string]any{"deviceId": "e1"}, 201, "token.created", "device.enrolled")
	step("DELETE", admin, "/v1/groups/g1/enrolment-tokens/"+et["id"].(string), provTok, nil, 204, "enrolment_token.revoked")
	step("POST", admin, "/v1/keys/jwt/rotate", srvAdmin, nil, 200, "jwt.key.rotated")
	step("DELETE", admin, "/v1/devices/d1", provTok, nil, 204, "device.deleted")
	step("DELETE", admin, "/v1/tokens/"+prov["id"].(string), srvAdmin, nil, 204, "token.revoked")
	if code := call(t, c, "GET", admin+"/v1/admin/backup", srvAdmin, nil, nil); code != 200 {
		t.Fatalf("backup: %d", code)
	}
	want = append(want, "store.backup")
	second := "second-admin-token-0123456789"
	writeFile(t, tokFile, []byte(srvAdmin+"\n"+second+"\n"))
	if !waitUntil(func() bool { return call(t, c, "GET", admin+"/v1/clouds", second, nil, nil) == 200 }) {
		t.Fatal("the new admin token was not taken")
	}
	want = append(want, "admin.tokens.reloaded")
	r.shutdown(t)

	evs := readAudit(t, auditPath)
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprint(ev["event"]))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("audit events\n got %v\nwant %v", got, want)
	}
	for _, ev := range evs {
		if ev["event"] != "admin.tokens.reloaded" && ev["requestId"] == nil {
			t.Errorf("event without requestId: %v", ev)
		}
	}
	if strings.Contains(r.stderr.String(), `"audit":true`) {
		t.Errorf("audit events in the diagnostic log too:\n%s", r.stderr)
	}
	raw, _ := os.ReadFile(auditPath)
	for _, secret := range []string{srvAdmin, second, provTok, dev["token"].(string), et["token"].(string), "YXp1cmUtZGV2aWNlLWtleS0zMi1ieXRlcy1sb25nISE="} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the audit file holds a secret")
		}
	}
}

// TestServeAuditWriteFailure: an event the sink cannot take (/dev/full)
// is counted, written to the diagnostic log whole, and the request it
// belongs to succeeds.
func TestServeAuditWriteFailure(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	r, _, admin := startPlanes(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--audit-file", "/dev/full")
	if code := call(t, http.DefaultClient, "POST", admin+"/v1/tokens", srvAdmin, map[string]any{"role": "provisioner"}, nil); code != 201 {
		t.Fatalf("mint with a failing audit sink: %d", code)
	}
	if v := metricValue(t, http.DefaultClient, admin, "credsign_audit_write_failures_total"); v != 1 {
		t.Errorf("credsign_audit_write_failures_total = %v, want 1", v)
	}
	if !waitUntil(func() bool {
		s := r.stderr.String()
		return strings.Contains(s, "audit sink write failed") && strings.Contains(s, `"auditEvent":{`) && strings.Contains(s, `"event":"token.created"`)
	}) {
		t.Errorf("the failed event is not in the diagnostic log:\n%s", r.stderr)
	}
}

// TestServeAccessLogSample: --access-log-sample N logs one in N successful
// issues and every failed one; 0 logs none of the successful ones.
func TestServeAccessLogSample(t *testing.T) {
	for _, tc := range []struct {
		sample string
		want   int
	}{{"1", 9}, {"4", 3}, {"0", 0}} {
		t.Run(tc.sample, func(t *testing.T) {
			r := startServe(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--access-log-sample", tc.sample, "--log-flush-interval", "0")
			base := "http://" + r.addr
			call(t, http.DefaultClient, "PUT", base+"/v1/devices/d1", srvAdmin, map[string]any{"cloud": "azure",
				"params": map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "d1"}, "secret": "YXp1cmUtZGV2aWNlLWtleS0zMi1ieXRlcy1sb25nISE="}, nil)
			for range 9 {
				if code := call(t, http.DefaultClient, "POST", base+"/v1/devices/d1/credentials", srvAdmin, nil, nil); code != 200 {
					t.Fatalf("issue: %d", code)
				}
			}
			call(t, http.DefaultClient, "POST", base+"/v1/devices/nope/credentials", srvAdmin, nil, nil)
			r.shutdown(t)
			logs := r.stderr.String()
			ok := strings.Count(logs, `"route":"/v1/devices/{id}/credentials","status":200`)
			failed := strings.Count(logs, `"route":"/v1/devices/{id}/credentials","status":404`)
			put := strings.Count(logs, `"route":"/v1/devices/{id}","status":201`)
			if ok != tc.want || failed != 1 || put != 1 {
				t.Errorf("access lines: %d successful issues (want %d), %d failed (want 1), %d puts (want 1)", ok, tc.want, failed, put)
			}
			if n := strings.Count(logs, `"event":"credentials.issued"`); n != 9 {
				t.Errorf("%d credentials.issued audit events, want 9 whatever the sampling", n)
			}
		})
	}
}
