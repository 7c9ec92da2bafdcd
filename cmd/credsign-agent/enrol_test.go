package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api"
	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/service"
)

// enrolFixture is a real credsign (the API on its embedded store, its logs
// kept) with an Azure group whose hub is a verifying TLS emulator.
type enrolFixture struct {
	t         *testing.T
	url       string
	admin     string
	groupKey  string
	emu       *cloudemu.Emulator
	caFile    string
	dir       string
	logs      *testutil.SyncBuffer
	responses *testutil.SyncBuffer // every answer the test read from credsign
	// off moves credsign's clock (service.Config.Now) on from the wall
	// clock: tests of its time rules advance it instead of sleeping.
	off atomic.Int64
}

// advance moves credsign's clock on by d.
func (f *enrolFixture) advance(d time.Duration) { f.off.Add(int64(d)) }

func newEnrolFixture(t *testing.T) *enrolFixture {
	t.Helper()
	return newEnrolFixtureWith(t, nil)
}

// newServerFixture is the part of an enrolFixture that is credsign: a real
// server on the embedded store, its clock the fixture's and its
// configuration amended by edit (nil: none), on loopback.
func newServerFixture(t *testing.T, edit func(*service.Config)) *enrolFixture {
	t.Helper()
	store, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	f := &enrolFixture{t: t, admin: "csa_" + randomB64(t, 24), logs: &testutil.SyncBuffer{}, responses: &testutil.SyncBuffer{}, dir: t.TempDir()}
	now := func() time.Time { return time.Now().Add(time.Duration(f.off.Load())) }
	cfg := service.Config{Store: store, AdminToken: f.admin, Now: now}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(svc, api.Config{Logger: zerolog.New(f.logs)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // 127.0.0.1, a free port
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// newEnrolFixtureWith is newEnrolFixture with the service's configuration
// amended by edit (nil: none): the server, the emulated Azure hub and the
// group of its devices.
func newEnrolFixtureWith(t *testing.T, edit func(*service.Config)) *enrolFixture {
	t.Helper()
	f := newServerFixture(t, edit)
	var err error
	f.emu, err = cloudemu.Start(cloudemu.Options{Cloud: cloudemu.Azure, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.emu.Close() })
	f.caFile = filepath.Join(f.dir, "ca.pem")
	if err := os.WriteFile(f.caFile, f.emu.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	// A DPS group key as the Azure portal makes them: 64 random bytes.
	f.groupKey = randomB64(t, 64)
	f.call("PUT", "/v1/groups/lamps", map[string]any{
		"cloud":  "azure",
		"params": map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "{deviceId}", "host": f.emu.Host(), "port": f.emu.Port()},
		"secret": f.groupKey,
	}, 201, nil)
	return f
}

func randomB64(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// call does an admin request, wants status, decodes the answer into out.
func (f *enrolFixture) call(method, path string, body any, status int, out any) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+f.admin)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		f.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatal(err)
		}
	} else {
		f.responses.Write(b)
	}
}

// mint mints an enrolment token and writes it to a file; it returns the
// token's ID, its text and the file.
func (f *enrolFixture) mint(req map[string]any) (string, string, string) {
	f.t.Helper()
	var et struct{ ID, Token string }
	f.call("POST", "/v1/groups/lamps/enrolment-tokens", req, 201, &et)
	file := filepath.Join(f.dir, et.ID+".enrol")
	if err := os.WriteFile(file, []byte(et.Token+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return et.ID, et.Token, file
}

// derive is the Azure DPS group enrollment derivation, the emulator's
// (not credsign's code): base64(HMAC-SHA256(base64dec(group key),
// registration ID)).
func derive(t *testing.T, groupKey, id string) string {
	k, err := cloudemu.DPSDeviceKey(groupKey, id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A device flashed with an enrolment token enrols itself, gets its own
// device token (written 0600, never printed) and publishes through a hub
// that verifies its SAS with the key derived from the group key (computed
// here independently); enrolment is refused past the use limit, outside
// the ID pattern, for an existing device, after revocation and after
// expiry, each as one line and status 1; revoking stops new enrolments
// only. Neither the group key nor an enrolment token appears in any
// output, log line, answer or device-side file.
func TestEnrolThenPublish(t *testing.T) {
	f := newEnrolFixture(t)
	ctx := testCtx(t)
	for _, id := range []string{"lamp-001", "lamp-002"} {
		if err := f.emu.AddDevice(map[string]string{"hubHost": "hub.azure-devices.net", "deviceId": id}, derive(t, f.groupKey, id)); err != nil {
			t.Fatal(err)
		}
	}
	tokID, tokText, tokFile := f.mint(map[string]any{"maxUses": 2, "ttlSeconds": 3600, "idPattern": "lamp-[0-9]{3}"})
	var outputs []string
	enrol := func(tokenFile, id, out string) result {
		r := runWith(ctx, nil, env(map[string]string{"CREDSIGN_SERVER": f.url}), "enrol", "--enrolment-token-file", tokenFile,
			"--device-id", id, "--token-out", out, "--timeout", "20s")
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}
	devToken := filepath.Join(f.dir, "lamp-001.token")
	r := enrol(tokFile, "lamp-001", devToken)
	if r.code != 0 || r.stdout != "enrolled lamp-001 in group lamps; device token written to "+devToken+"\n" || r.stderr != "" {
		t.Fatalf("enrol: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	st, err := os.Stat(devToken)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	tokBytes, _ := os.ReadFile(devToken)
	if !strings.HasPrefix(string(tokBytes), "csd_2.") || strings.Contains(r.stdout+r.stderr, strings.TrimSpace(string(tokBytes))) {
		t.Fatalf("the device token is not a v2 device token, or was printed")
	}
	if entries, _ := os.ReadDir(f.dir); len(entries) != 3 { // ca.pem, the enrolment token, the device token: nothing half-written
		t.Errorf("files left in %s: %v", f.dir, entries)
	}
	// From now on the device is a device: pub with its token file.
	pub := func(id, token, msg string) result {
		r := runWith(ctx, nil, env(map[string]string{"CREDSIGN_SERVER": f.url, "CREDSIGN_DEVICE": id, "CREDSIGN_TOKEN_FILE": token}),
			"pub", "--broker-ca-file", f.caFile, "-t", "devices/"+id+"/messages/events/", "-m", msg)
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}
	if r := pub("lamp-001", devToken, "hello"); r.code != 0 {
		t.Fatalf("pub: exit %d: %s", r.code, r.stderr)
	}
	if _, err := f.emu.Wait(ctx, func(s cloudemu.State) bool { return len(s.Messages) == 1 }); err != nil {
		t.Fatal(err)
	}
	if m := f.emu.Snapshot().Messages[0]; string(m.Payload) != "hello" {
		t.Fatalf("message %q", m.Payload)
	}
	// Enrolling again with the token file in place: nothing to do.
	if r := enrol(tokFile, "lamp-001", devToken); r.code != 0 || !strings.Contains(r.stderr, "already enrolled") {
		t.Fatalf("second enrol: exit %d, %q", r.code, r.stderr)
	}
	refused := func(name, file, id string, want ...string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "device.token")
		r := enrol(file, id, out)
		if r.code != 1 {
			t.Fatalf("%s: exit %d, stderr %q; want 1", name, r.code, r.stderr)
		}
		oneLine(t, r.stderr, append([]string{"credsign-agent enrol: "}, want...)...)
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: a token file was written", name)
		}
	}
	refused("existing device", tokFile, "lamp-001", "credsign answered 409", "the device already exists")
	refused("outside the pattern", tokFile, "other-1", "credsign answered 403", "does not match this enrolment token's ID pattern")
	refused("outside the pattern (anchored)", tokFile, "lamp-0011", "credsign answered 403")
	dev2 := filepath.Join(f.dir, "lamp-002.token")
	if r := enrol(tokFile, "lamp-002", dev2); r.code != 0 {
		t.Fatalf("second use: exit %d: %s", r.code, r.stderr)
	}
	refused("past the use limit", tokFile, "lamp-003", "credsign answered 403", "used up")
	var info struct {
		Uses, MaxUses int
		RevokedAt     *time.Time
	}
	f.call("GET", "/v1/groups/lamps/enrolment-tokens/"+tokID, nil, 200, &info)
	if info.Uses != 2 || info.MaxUses != 2 || info.RevokedAt != nil {
		t.Errorf("token after two enrolments: %+v", info)
	}
	// Revocation stops new enrolments, and nothing else.
	f.call("DELETE", "/v1/groups/lamps/enrolment-tokens/"+tokID, nil, 204, nil)
	id2, text2, file2 := f.mint(map[string]any{"maxUses": 10, "ttlSeconds": 3600})
	f.call("DELETE", "/v1/groups/lamps/enrolment-tokens/"+id2, nil, 204, nil)
	refused("after revocation", file2, "lamp-004", "credsign answered 401")
	if r := pub("lamp-001", devToken, "after-revoke"); r.code != 0 {
		t.Fatalf("pub after the enrolment token was revoked: exit %d: %s", r.code, r.stderr)
	}
	if r := pub("lamp-002", dev2, "second-device"); r.code != 0 {
		t.Fatalf("pub of the second device: exit %d: %s", r.code, r.stderr)
	}
	// Expiry.
	_, text3, file3 := f.mint(map[string]any{"maxUses": 10, "ttlSeconds": 1})
	f.advance(1100 * time.Millisecond)
	refused("after expiry", file3, "lamp-005", "credsign answered 401")
	// What the operator sees of the group never holds its key.
	f.call("GET", "/v1/groups/lamps", nil, 200, nil)
	f.call("GET", "/v1/groups", nil, 200, nil)
	f.call("GET", "/v1/devices/lamp-001", nil, 200, nil)
	f.call("GET", "/v1/devices?limit=10", nil, 200, nil)
	// Nowhere: outputs, server logs, answers, device-side files.
	dev1, _ := os.ReadFile(devToken)
	dev2b, _ := os.ReadFile(dev2)
	haystacks := map[string]string{
		"command output": strings.Join(outputs, "\n"), "server log": f.logs.String(), "answers": f.responses.String(),
		"device token files": string(dev1) + string(dev2b),
	}
	needles := map[string]string{"group key": f.groupKey, "derived key": derive(t, f.groupKey, "lamp-001"),
		"enrolment token": tokText, "revoked enrolment token": text2, "expired enrolment token": text3,
		"device token": strings.TrimSpace(string(dev1))}
	for hn, h := range haystacks {
		for nn, n := range needles {
			if hn == "device token files" && nn == "device token" {
				continue
			}
			if strings.Contains(h, n) {
				t.Errorf("the %s appears in the %s", nn, hn)
			}
		}
	}
	if !strings.Contains(f.logs.String(), `"event":"device.enrolled"`) || !strings.Contains(f.logs.String(), `"event":"device.enrol_refused"`) {
		t.Error("no audit events for enrolments")
	}
}

// enrol's usage errors are one line and status 2; its settings come from
// flags, the environment or the config file like every command's, and
// only enrol takes the enrolment token.
func TestEnrolUsage(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no enrolment token", map[string]string{"CREDSIGN_SERVER": "http://127.0.0.1:1", "CREDSIGN_DEVICE": "d", "CREDSIGN_TOKEN_FILE": dir + "/t"},
			[]string{"enrol"}, "enrol needs --enrolment-token-file (CREDSIGN_ENROLMENT_TOKEN_FILE)"},
		{"no device", map[string]string{"CREDSIGN_SERVER": "http://127.0.0.1:1", "CREDSIGN_ENROLMENT_TOKEN_FILE": dir + "/e"},
			[]string{"enrol", "--token-out", dir + "/t"}, "enrol needs --device (CREDSIGN_DEVICE)"},
		{"no token file", map[string]string{"CREDSIGN_SERVER": "http://127.0.0.1:1", "CREDSIGN_ENROLMENT_TOKEN_FILE": dir + "/e"},
			[]string{"enrol", "--device-id", "d"}, "enrol needs --token-file (CREDSIGN_TOKEN_FILE)"},
		{"run takes no enrolment token", nil, []string{"run", "--enrolment-token-file", dir + "/e"}, "flag provided but not defined: -enrolment-token-file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runWith(ctx, nil, env(tc.env), tc.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, stderr %q; want 2", r.code, r.stderr)
			}
			oneLine(t, r.stderr, tc.want)
		})
	}
	// A missing enrolment token file is a failure (1), not a usage error.
	r := runWith(ctx, nil, env(map[string]string{"CREDSIGN_SERVER": "http://127.0.0.1:1"}), "enrol",
		"--enrolment-token-file", dir+"/missing", "--device", "d", "--token-file", dir+"/t")
	if r.code != 1 {
		t.Fatalf("missing enrolment token file: exit %d, %q", r.code, r.stderr)
	}
	oneLine(t, r.stderr, "credsign-agent enrol: enrolment token file: open "+dir+"/missing")
}
