package vaultstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/goleak"

	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/internal/testing/vaulttest"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/storetest"
)

// op is one store call for the fault tables.
type op struct {
	name string
	call func(ctx context.Context, s *Store) error
}

func ops(secret string) []op {
	return []op{
		{"GetDevice", func(ctx context.Context, s *Store) error { _, err := s.GetDevice(ctx, "lamp-7"); return err }},
		{"PutDevice", func(ctx context.Context, s *Store) error {
			_, err := s.PutDevice(ctx, secrets.Device{ID: "lamp-8", Cloud: "aliyun", Secret: secret}, -1)
			return err
		}},
		{"DeleteDevice", func(ctx context.Context, s *Store) error { return s.DeleteDevice(ctx, "lamp-7") }},
		{"ListDevices", func(ctx context.Context, s *Store) error {
			_, err := s.ListDevices(ctx, secrets.ListOptions{})
			return err
		}},
		{"TokenByHash", func(ctx context.Context, s *Store) error {
			_, err := s.TokenByHash(ctx, storetest.Hash("x"))
			return err
		}},
		{"RevokeToken", func(ctx context.Context, s *Store) error { return s.RevokeToken(ctx, "t", time.Now()) }},
		{"Ping", func(ctx context.Context, s *Store) error { return s.Ping(ctx) }},
	}
}

// expectUnavailable runs every op (at once) and checks each fails as
// unavailable, within the store's timeout, without a credential in the error.
func expectUnavailable(t *testing.T, s *Store, secret, token, want string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, o := range ops(secret) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := o.call(context.Background(), s)
			took := time.Since(start)
			switch {
			case !errors.Is(err, secrets.ErrUnavailable):
				t.Errorf("%s (want %q): error = %v, want ErrUnavailable", o.name, want, err)
			case took > s.cfg.Timeout+2*time.Second:
				t.Errorf("%s: failed after %v, timeout is %v", o.name, took, s.cfg.Timeout)
			case strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), token):
				t.Errorf("%s: error contains a credential: %v", o.name, err)
			case !strings.Contains(err.Error(), want):
				t.Errorf("%s: error %q does not say %q", o.name, err, want)
			}
		}()
	}
	wg.Wait()
}

func mustWork(t *testing.T, s *Store, what string) {
	t.Helper()
	ctx := context.Background()
	d := secrets.Device{ID: "lamp-7", Cloud: "aliyun", Secret: storetest.NewSecret()}
	if _, err := s.PutDevice(ctx, d, -1); err != nil {
		t.Fatalf("%s: PutDevice: %v", what, err)
	}
	got, err := s.GetDevice(ctx, "lamp-7")
	if err != nil || got.Secret != d.Secret {
		t.Fatalf("%s: GetDevice: %v", what, err)
	}
}

// waitWorks waits up to within for the store to work again.
func waitWorks(t *testing.T, s *Store, what string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testutil.Eventually(t, within, func() error {
		_, err := s.GetDevice(context.Background(), "lamp-7")
		if err == nil || errors.Is(err, secrets.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("%s: store still failing: %w", what, err)
	})
	took := time.Since(start)
	mustWork(t, s, what)
	return took
}

// TestVaultDownAndBack pauses, kills, restarts and seals a real Vault under
// a running store.
func TestVaultDownAndBack(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	srv := vaulttest.Start(t)
	cfg := baseConfig(srv, srv.RootToken)
	cfg.Timeout = 1500 * time.Millisecond
	s := openStore(t, cfg, nil)
	defer s.Close()
	secret := storetest.NewSecret()
	mustWork(t, s, "before")

	srv.Pause(t) // SIGSTOP: connections hang
	expectUnavailable(t, s, secret, srv.RootToken, "did not answer within 1.5s")
	srv.Resume(t)
	waitWorks(t, s, "after SIGCONT", 5*time.Second)

	srv.Stop() // killed: connections refused
	expectUnavailable(t, s, secret, srv.RootToken, "connection refused")
	srv.Restart(t) // same port, same root token, empty storage
	// On a loaded machine a refused call can also run out of time and mark
	// Vault silent; the probe then lifts the mark within a probe interval.
	waitWorks(t, s, "after restart", 5*time.Second)

	srv.Seal(t)
	expectUnavailable(t, s, secret, srv.RootToken, "Vault is sealed")
	srv.Unseal(t)
	waitWorks(t, s, "after unseal", 5*time.Second)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, leaks)
}

// TestCallerCancelIsNotUnavailable: a request its caller abandons is not
// reported as a Vault failure.
func TestCallerCancelIsNotUnavailable(t *testing.T) {
	srv := vaulttest.Start(t)
	s := newStore(t, baseConfig(srv, srv.RootToken))
	srv.Pause(t)
	defer srv.Resume(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := s.GetDevice(ctx, "lamp-7")
	if !errors.Is(err, context.Canceled) || errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("cancelled GetDevice: %v, want context.Canceled", err)
	}
}

// TestTokenRenewal gives the store a renewable token with a 4 s TTL and uses
// it well past that, through three renewals; LifetimeWatcher must keep it
// alive.
func TestTokenRenewal(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	srv := vaulttest.Start(t)
	token := policyToken(t, srv, "4s")
	cfg := baseConfig(srv, token)
	cfg.Timeout = 2 * time.Second
	var logs testutil.SyncBuffer
	s := openStore(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer s.Close()
	start := time.Now()
	testutil.Eventually(t, 15*time.Second, func() error {
		mustWork(t, s, "with a renewed token")
		if n := strings.Count(logs.String(), "vaultstore: token renewed"); n < 3 {
			return fmt.Errorf("%d renewals of a token of 4 s, want 3", n)
		}
		return nil
	})
	// Vault revokes an expired token, so a lookup of it would fail.
	if _, err := srv.Client(t).Auth().Token().Lookup(token); err != nil {
		t.Fatalf("token gone after %v: %v", time.Since(start).Round(time.Second), err)
	}
	s.Close()
	goleak.VerifyNone(t, leaks)
}

// TestExpiredTokenIsUnavailable: a token that cannot be renewed expires and
// the store says so clearly.
func TestExpiredTokenIsUnavailable(t *testing.T) {
	srv := vaulttest.Start(t)
	root := srv.Client(t)
	policyToken(t, srv, "1h") // installs the policy
	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{
		Policies: []string{"credsign"}, NoDefaultPolicy: true, TTL: "2s",
		Renewable: func() *bool { b := false; return &b }(),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(srv, sec.Auth.ClientToken)
	var logs testutil.SyncBuffer
	s := openStore(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	defer s.Close()
	mustWork(t, s, "fresh token")
	testutil.Eventually(t, 5*time.Second, func() error { // Vault revokes the token when its 2s are up
		if _, err := root.Auth().Token().Lookup(sec.Auth.ClientToken); err == nil {
			return errors.New("the token is still valid")
		}
		return nil
	})
	expectUnavailable(t, s, "no-secret-here", sec.Auth.ClientToken, "permission denied")
	want := `level=WARN msg="vaultstore: VAULT_TOKEN can no longer be renewed and will expire`
	if !strings.Contains(logs.String(), want) || strings.Contains(logs.String(), sec.Auth.ClientToken) {
		t.Fatalf("log lacks %q or shows the token:\n%s", want, logs.String())
	}
}

// setupAppRole enables AppRole on srv with a role whose tokens live ttl and
// at most maxTTL, and returns its role ID and a file with a secret ID.
func setupAppRole(t *testing.T, srv *vaulttest.Server, ttl, maxTTL string) (roleID, secretIDFile, secretID string) {
	t.Helper()
	root := srv.Client(t)
	policyToken(t, srv, "1h") // installs the policy
	if err := root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	if _, err := root.Logical().Write("auth/approle/role/credsign", map[string]any{
		"token_policies": "credsign", "token_no_default_policy": true, "token_ttl": ttl, "token_max_ttl": maxTTL,
	}); err != nil {
		t.Fatalf("approle role: %v", err)
	}
	rid, err := root.Logical().Read("auth/approle/role/credsign/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().Write("auth/approle/role/credsign/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	secretID = sid.Data["secret_id"].(string)
	secretIDFile = filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(secretIDFile, []byte(secretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return rid.Data["role_id"].(string), secretIDFile, secretID
}

// TestAppRoleRelogin: AppRole tokens live 2 s, at most 4 s; the store keeps
// working for 10 s by renewing and logging in again, and recovers at once
// from a token revoked behind its back.
func TestAppRoleRelogin(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	srv := vaulttest.Start(t)
	roleID, secretIDFile, secretID := setupAppRole(t, srv, "2s", "4s")
	cfg := baseConfig(srv, "")
	cfg.Auth, cfg.RoleID, cfg.SecretIDFile = AuthAppRole, roleID, secretIDFile
	cfg.Timeout = 2 * time.Second
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tokens := map[string]bool{}
	testutil.Eventually(t, 10*time.Second, func() error {
		mustWork(t, s, "with AppRole")
		if tokens[s.client.Token()] = true; len(tokens) < 3 {
			return fmt.Errorf("used %d tokens with a 4 s max TTL; want a fresh login at least twice", len(tokens))
		}
		return nil
	})

	if err := srv.Client(t).Auth().Token().RevokeOrphan(s.client.Token()); err != nil {
		t.Fatal(err)
	}
	mustWork(t, s, "after the token was revoked")

	// A wrong secret ID fails New, and the error does not show it.
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("wrong-"+secretID), 0o600)
	cfg.SecretIDFile = bad
	if s2, err := New(context.Background(), cfg, nil); err == nil {
		s2.Close()
		t.Fatal("New with a wrong secret ID succeeded")
	} else if strings.Contains(err.Error(), secretID) || !strings.Contains(err.Error(), "approle login") {
		t.Fatalf("New with a wrong secret ID: %v", err)
	}
	s.Close()
	goleak.VerifyNone(t, leaks)

	if !strings.Contains(logs.String(), "logged in again") {
		t.Errorf("no re-login in the log:\n%s", logs.String())
	}
	for tok := range tokens {
		if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), secretID) {
			t.Fatalf("log shows a token or the secret ID:\n%s", logs.String())
		}
	}
}

// TestApproleSetupScript runs deployments/vault/approle-setup.sh against a
// dev server and logs in with the files it writes.
func TestApproleSetupScript(t *testing.T) {
	srv := vaulttest.Start(t)
	bin, err := vaulttest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	pathDir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(pathDir, "vault")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "approle")
	cmd := exec.CommandContext(t.Context(), "bash", "../../deployments/vault/approle-setup.sh", out)
	cmd.Env = []string{"PATH=" + pathDir + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"VAULT_ADDR=" + srv.Addr, "VAULT_TOKEN=" + srv.RootToken}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("approle-setup.sh: %v\n%s", err, b)
	}
	fi, err := os.Stat(filepath.Join(out, "secret-id"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret-id file: %v, %v", fi, err)
	}
	roleID, err := os.ReadFile(filepath.Join(out, "role-id"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Address: srv.Addr, Auth: AuthAppRole, RoleID: strings.TrimSpace(string(roleID)),
		SecretIDFile: filepath.Join(out, "secret-id"), Timeout: 5 * time.Second}
	mustWork(t, newStore(t, cfg), "logged in with the script's AppRole")
}

// fakeVault answers the requests New makes, and hands KV data reads to
// data. It stands in for Vault only where a real server cannot easily be
// made to fail the way a test needs.
func fakeVault(t *testing.T, data http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/auth/token/lookup-self":
			fmt.Fprint(w, `{"data":{"ttl":0,"renewable":false}}`)
		case r.URL.Path == "/v1/sys/internal/ui/mounts/secret":
			fmt.Fprint(w, `{"data":{"type":"kv","options":{"version":"2"}}}`)
		case strings.HasPrefix(r.URL.Path, "/v1/secret/metadata/"):
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[]}`)
		case r.URL.Path == "/v1/secret/data/credsign/meta/layout":
			fmt.Fprint(w, `{"data":{"data":{"format":1},"metadata":{"version":1}}}`)
		default:
			data(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRetriesTransientErrors: a Vault behind a load balancer may answer 502
// or 503 for a moment. A real server cannot easily be made to do that once,
// so this uses a fake.
func TestRetriesTransientErrors(t *testing.T) {
	var calls atomic.Int32
	srv := fakeVault(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, `{"errors":["upstream hiccup"]}`)
			return
		}
		fmt.Fprint(w, `{"data":{"data":{"id":"lamp-7","cloud":"aliyun","secret":"s","params":{"port":8883},"createdAt":"2026-11-23T10:00:00Z","updatedAt":"2026-11-23T10:00:00Z"},"metadata":{"version":4}}}`)
	})
	s := newStore(t, Config{Address: srv.URL, Token: "fake-token", Timeout: 5 * time.Second})
	d, err := s.GetDevice(context.Background(), "lamp-7")
	if err != nil {
		t.Fatalf("GetDevice through two 502s: %v", err)
	}
	if d.Version != 4 || d.Params["port"] != float64(8883) || calls.Load() != 3 {
		t.Fatalf("got version %d params %v after %d calls", d.Version, d.Params, calls.Load())
	}
}

// TestPersistentServerErrors: a Vault that keeps answering 500 is reported
// unavailable within the timeout, with its message and without the token.
func TestPersistentServerErrors(t *testing.T) {
	srv := fakeVault(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"errors":["storage backend exploded for fake-token"]}`)
	})
	s := newStore(t, Config{Address: srv.URL, Token: "fake-token", Timeout: time.Second})
	start := time.Now()
	_, err := s.GetDevice(context.Background(), "lamp-7")
	if !errors.Is(err, secrets.ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Fatalf("GetDevice against a failing Vault: %v after %v", err, time.Since(start))
	}
	if strings.Contains(err.Error(), "fake-token") {
		t.Fatalf("error contains the token: %v", err)
	}
}

// TestFailFastWhileVaultDown: once a call found Vault stopped, later calls
// fail at once (one attempt) instead of each waiting the whole timeout, and
// the first answer from a restarted Vault lifts that.
func TestFailFastWhileVaultDown(t *testing.T) {
	srv := vaulttest.Start(t)
	cfg := baseConfig(srv, srv.RootToken)
	cfg.Timeout = 5 * time.Second
	s := openStore(t, cfg, nil)
	defer s.Close()
	mustWork(t, s, "before")
	srv.Stop()
	start := time.Now()
	if _, err := s.GetDevice(context.Background(), "lamp-7"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("first call with Vault stopped: %v", err)
	}
	// Refused connections are retried briefly, not until the 5 s timeout.
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("first call with Vault stopped took %v; a refused connection should fail within 3s", took)
	}
	for _, o := range ops(storetest.NewSecret()) {
		start := time.Now()
		err := o.call(context.Background(), s)
		if took := time.Since(start); !errors.Is(err, secrets.ErrUnavailable) || took > time.Second ||
			!strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%s with Vault known down: %v after %v; want unavailable (connection refused) within 1s", o.name, err, took)
		}
	}
	srv.Restart(t)
	mustWork(t, s, "after restart")
}

// TestFrozenVaultFailsFast: a Vault that stops answering (SIGSTOP: the
// kernel still accepts connections, nothing answers) costs the first call
// the whole timeout; every later call fails at once until the probe sees
// Vault answer, and calls work again within moments of SIGCONT. A caller's
// own short deadline says nothing about Vault and marks nothing.
func TestFrozenVaultFailsFast(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	srv := vaulttest.Start(t)
	cfg := baseConfig(srv, srv.RootToken)
	cfg.Timeout = 2 * time.Second
	var logs testutil.SyncBuffer
	s := openStore(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	defer s.Close()
	mustWork(t, s, "before")

	srv.Pause(t)
	paused := true
	defer func() {
		if paused {
			srv.Resume(t)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := s.GetDevice(ctx, "lamp-7")
	cancel()
	if err == nil || s.silentErr() != nil {
		t.Fatalf("a caller's 200ms deadline: %v; marked Vault silent: %v", err, s.silentErr() != nil)
	}

	start := time.Now()
	_, err = s.GetDevice(context.Background(), "lamp-7")
	if took := time.Since(start); !errors.Is(err, secrets.ErrUnavailable) || took < cfg.Timeout-100*time.Millisecond ||
		!strings.Contains(err.Error(), "did not answer within 2s") {
		t.Fatalf("first call to a frozen Vault: %v after %v; want unavailable after the 2s timeout", err, took)
	}
	secret := storetest.NewSecret()
	for round := range 3 {
		for _, o := range ops(secret) {
			start := time.Now()
			err := o.call(context.Background(), s)
			if took := time.Since(start); !errors.Is(err, secrets.ErrUnavailable) || took > 100*time.Millisecond ||
				!strings.Contains(err.Error(), "has not answered since") {
				t.Errorf("round %d: %s with Vault frozen: %v after %v; want unavailable within 100ms", round, o.name, err, took)
			}
			noCredential(t, err, secret, srv.RootToken)
		}
		time.Sleep(300 * time.Millisecond) // the probe keeps failing meanwhile
	}

	srv.Resume(t)
	paused = false
	took := waitWorks(t, s, "after SIGCONT", 3*time.Second)
	t.Logf("calls work again %v after SIGCONT", took)
	for _, want := range []string{"level=WARN msg=\"vaultstore: Vault does not answer", "level=INFO msg=\"vaultstore: Vault answers again"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	s.Close()
	goleak.VerifyNone(t, leaks)
}

func noCredential(t *testing.T, err error, creds ...string) {
	t.Helper()
	for _, c := range creds {
		if err != nil && strings.Contains(err.Error(), c) {
			t.Fatalf("error contains a credential: %v", err)
		}
	}
}

// TestFailFastClearsOnAnswer: a Vault answering 500 is marked down after
// one call; the next fails without retrying; once it answers again calls
// work and retry as before.
func TestFailFastClearsOnAnswer(t *testing.T) {
	var failing, failOnce atomic.Bool
	var calls atomic.Int32
	failing.Store(true)
	srv := fakeVault(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if failing.Load() || failOnce.CompareAndSwap(true, false) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"errors":["storage backend exploded"]}`)
			return
		}
		fmt.Fprint(w, `{"data":{"data":{"id":"lamp-7","cloud":"aliyun","secret":"s","createdAt":"2026-11-23T10:00:00Z","updatedAt":"2026-11-23T10:00:00Z"},"metadata":{"version":1}}}`)
	})
	s := newStore(t, Config{Address: srv.URL, Token: "fake-token", Timeout: 2 * time.Second})
	if _, err := s.GetDevice(context.Background(), "lamp-7"); !errors.Is(err, secrets.ErrUnavailable) || calls.Load() < 2 {
		t.Fatalf("first call: %v after %d attempts; want unavailable after retries", err, calls.Load())
	}
	calls.Store(0)
	start := time.Now()
	_, err := s.GetDevice(context.Background(), "lamp-7")
	if !errors.Is(err, secrets.ErrUnavailable) || calls.Load() != 1 || time.Since(start) > 500*time.Millisecond ||
		!strings.Contains(err.Error(), "storage backend exploded") {
		t.Fatalf("second call: %v after %d attempts in %v; want one attempt, at once, saying why", err, calls.Load(), time.Since(start))
	}
	failing.Store(false)
	if _, err := s.GetDevice(context.Background(), "lamp-7"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	// Back to normal: a transient 500 (of the next call only) is retried
	// again.
	calls.Store(0)
	failOnce.Store(true)
	if _, err := s.GetDevice(context.Background(), "lamp-7"); err != nil {
		t.Fatalf("transient 500 after recovery: %v (attempts %d)", err, calls.Load())
	}
}

// TestNotVaultAtAddress: an address where something other than Vault
// answers 404 with an empty body fails New with a message that says so.
func TestNotVaultAtAddress(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	_, err := New(context.Background(), Config{Address: srv.URL, Token: "fake-token", Timeout: 2 * time.Second}, nil)
	want := "vaultstore: check token: " + srv.URL + " answered 404 to /v1/auth/token/lookup-self: is VAULT_ADDR the address of a Vault server?"
	if err == nil || err.Error() != want {
		t.Fatalf("New: %v\nwant %s", err, want)
	}
}
