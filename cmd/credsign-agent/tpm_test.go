//go:build !notpm

package main

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/credsign/credsign/internal/cloudemu"
	"github.com/credsign/credsign/internal/testing/swtpmtest"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/service"
	"github.com/credsign/credsign/service/tpmattest"
)

// TestTPMKey: tpm-key creates the key in a real software TPM once, prints
// the same public JWK every time, with the RFC 7638 thumbprint as go-jose
// computes it.
func TestTPMKey(t *testing.T) {
	sw := swtpmtest.Start(t, "")
	file := filepath.Join(t.TempDir(), "device.tpmkey")
	var kids []string
	for i := range 2 {
		r := runWith(context.Background(), nil, env(nil), "tpm-key", "--tpm", "tcp:"+sw.Addr, "--tpm-key-file", file)
		if r.code != 0 {
			t.Fatalf("tpm-key: exit %d, stderr %q", r.code, r.stderr)
		}
		if created := strings.Contains(r.stderr, "created a key in the TPM"); created != (i == 0) {
			t.Errorf("run %d: stderr %q", i, r.stderr)
		}
		var out struct {
			Kid string          `json:"kid"`
			JWK json.RawMessage `json:"jwk"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("stdout %q: %v", r.stdout, err)
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(out.JWK); err != nil || !jwk.IsPublic() {
			t.Fatalf("jwk %s: %v", out.JWK, err)
		}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil || base64.RawURLEncoding.EncodeToString(tp) != out.Kid {
			t.Fatalf("kid %q, go-jose's thumbprint %x (%v)", out.Kid, tp, err)
		}
		kids = append(kids, out.Kid)
	}
	if kids[0] != kids[1] {
		t.Errorf("the key changed: %v", kids)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
	r := runWith(context.Background(), nil, env(nil), "tpm-key", "--tpm", "tcp:"+sw.Addr)
	if r.code != 2 || !strings.Contains(r.stderr, "needs --tpm-key-file") {
		t.Errorf("no --tpm-key-file: exit %d, %q", r.code, r.stderr)
	}
	r = runWith(context.Background(), nil, env(nil), "tpm-key", "--tpm", file, "--tpm-key-file", file)
	if r.code != 1 || !strings.Contains(r.stderr, "not a character device") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("a file as the TPM: exit %d, %q", r.code, r.stderr)
	}
}

// TestEnrolWithTPMKey: against a server with the TPM EK CA of a real
// software TPM (swtpm, its EK certificate from swtpm_localca), in a group
// that requires TPM attestation: a file key is refused (403) and leaves no
// device; enrol --tpm-key-file creates the key in the TPM, attests it
// (challenge, credential activation, TPM2_Certify) and binds it with
// attestation "tpm"; creds and run then sign their proofs in the TPM, and
// run connects to the emulated broker and reconnects with refreshed
// credentials before they lapse.
func TestEnrolWithTPMKey(t *testing.T) {
	ca := swtpmtest.NewCA(t)
	sw := swtpmtest.Start(t, swtpmtest.Manufacture(t, ca))
	verifier, err := tpmattest.New(tpmattest.Config{CAs: ca.PEM})
	if err != nil {
		t.Fatal(err)
	}
	f := newEnrolFixtureWith(t, func(c *service.Config) { c.TPMAttestation = verifier })
	f.call("PUT", "/v1/groups/lamps", map[string]any{
		"cloud":              "azure",
		"params":             map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "{deviceId}", "host": f.emu.Host(), "port": f.emu.Port()},
		"secret":             f.groupKey,
		"requireAttestation": "tpm",
	}, 200, nil)
	ctx := testCtx(t)
	const id = "lamp-tpm-1"
	if err := f.emu.AddDevice(map[string]string{"hubHost": "hub.azure-devices.net", "deviceId": id}, derive(t, f.groupKey, id)); err != nil {
		t.Fatal(err)
	}
	_, _, tokFile := f.mint(map[string]any{"maxUses": 5, "ttlSeconds": 3600})
	base := map[string]string{"CREDSIGN_SERVER": f.url, "CREDSIGN_DEVICE": id}

	// A file key: refused, nothing made.
	fileEnv := map[string]string{"CREDSIGN_KEY_FILE": filepath.Join(f.dir, "file.key")}
	maps.Copy(fileEnv, base)
	r := runWith(ctx, nil, env(fileEnv), "enrol", "--enrolment-token-file", tokFile, "--timeout", "20s")
	if r.code != 1 || !strings.Contains(r.stderr, "403") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("enrol with a file key in a group requiring TPM attestation: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	f.call("GET", "/v1/devices/"+id, nil, 404, nil)
	// Nor a TPM key without its attestation.
	keyFile := filepath.Join(f.dir, "device.tpmkey")
	tpmEnv := map[string]string{"CREDSIGN_TPM": "tcp:" + sw.Addr, "CREDSIGN_TPM_KEY_FILE": keyFile}
	maps.Copy(tpmEnv, base)
	r = runWith(ctx, nil, env(tpmEnv), "enrol", "--enrolment-token-file", tokFile, "--tpm-attest=false", "--timeout", "20s")
	if r.code != 1 || !strings.Contains(r.stderr, "403") {
		t.Fatalf("enrol with an unattested TPM key: exit %d, stderr %q", r.code, r.stderr)
	}
	f.call("GET", "/v1/devices/"+id, nil, 404, nil)

	// The TPM key, attested, through a proxy that answers the first
	// challenge call 503 (a fake: the real server cannot be made to fail
	// one call): the agent backs off and calls again.
	var challenges atomic.Int32
	server, err := url.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(server)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/enrol/attest" && challenges.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	tpmEnv["CREDSIGN_SERVER"] = proxy.URL
	r = runWith(ctx, nil, env(tpmEnv), "enrol", "--enrolment-token-file", tokFile, "--timeout", "30s")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "enrolled "+id+" in group lamps; device key ") || !strings.Contains(r.stdout, ", attested") {
		t.Fatalf("enrol with the TPM key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := challenges.Load(); n != 2 {
		t.Fatalf("a challenge call answered 503: %d challenge calls, want 2 (stderr %q)", n, r.stderr)
	}
	tpmEnv["CREDSIGN_SERVER"] = f.url
	var keys struct {
		Keys []struct{ Kid, Attestation string }
	}
	f.call("GET", "/v1/devices/"+id+"/keys", nil, 200, &keys)
	if len(keys.Keys) != 1 || keys.Keys[0].Attestation != "tpm" || !strings.Contains(r.stdout, keys.Keys[0].Kid) {
		t.Fatalf("keys %+v, enrol said %q", keys, r.stdout)
	}
	// tpm-key prints the same key (created once, by enrol).
	r = runWith(ctx, nil, env(tpmEnv), "tpm-key")
	if r.code != 0 || !strings.Contains(r.stdout, keys.Keys[0].Kid) || r.stderr != "" {
		t.Fatalf("tpm-key: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// The file key cannot fetch: it is not the device's.
	r = runWith(ctx, nil, env(fileEnv), "creds", "--timeout", "20s")
	if r.code != 1 {
		t.Fatalf("creds with the file key: exit %d", r.code)
	}
	oneLine(t, r.stderr, "credsign answered 401", "proof refused (unknown-key)")
	// --key-file and --tpm-key-file together are a usage error.
	if r := runWith(ctx, nil, env(tpmEnv), "creds", "--key-file", fileEnv["CREDSIGN_KEY_FILE"]); r.code != 2 {
		t.Errorf("two keys: exit %d, %q", r.code, r.stderr)
	}
	if r := runWith(ctx, nil, env(tpmEnv), "creds", "--timeout", "20s"); r.code != 0 || !strings.Contains(r.stdout, `"password"`) {
		t.Fatalf("creds with the TPM key: exit %d: %s", r.code, r.stderr)
	}

	// run: connects, refreshes every few seconds and reconnects with the
	// fresh SAS token before the old one lapses (the hub drops lapsed ones).
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	out := &testutil.SyncBuffer{}
	go func() {
		done <- run(runCtx, []string{"run", "--broker-ca-file", f.caFile, "--ttl", "6s", "--pub-telemetry"},
			strings.NewReader("from the tpm\n"), out, out, env(tpmEnv))
	}()
	st, err := f.emu.Wait(ctx, func(s cloudemu.State) bool {
		ok := 0
		for _, a := range s.Attempts {
			if a.Err == nil {
				ok++
			}
		}
		return ok >= 3 && len(s.Messages) >= 1
	})
	stop()
	if code := <-done; code != 0 || err != nil {
		t.Fatalf("run: exit %d, %v; output %s", code, err, out.String())
	}
	if st.Expired != 0 {
		t.Errorf("%d sessions lapsed: the agent did not refresh in time", st.Expired)
	}
	if string(st.Messages[0].Payload) != "from the tpm" {
		t.Errorf("message %q", st.Messages[0].Payload)
	}
}
