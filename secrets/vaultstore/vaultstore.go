// Package vaultstore is the production secrets.Store: HashiCorp Vault's KV
// version 2 secrets engine.
//
// Records live under Config.Prefix (default "credsign/") in the KV v2 mount
// Config.Mount (default "secret"):
//
//	<prefix>devices/<id>          one device document, its secret included
//	<prefix>tokens/by-hash/<hash> one API token record (hash = SHA-256 hex)
//	<prefix>tokens/by-id/<id>     {"hash": …}: the index from token ID to record
//
// so `vault kv get -mount=secret credsign/devices/lamp-7` shows a device.
// A device's Version is its KV version; writes use KV check-and-set, and a
// delete removes the metadata, that is every version of the secret.
//
// Every call is bounded by Config.Timeout. The Vault client retries
// transient failures (connection errors, 5xx, 429) with back-off inside that
// bound; a Vault that is sealed, down, refusing the token or not answering
// in time gives an error wrapping secrets.ErrUnavailable. Tokens are renewed
// with api.LifetimeWatcher; with AppRole or Kubernetes auth the store logs
// in again when renewal ends or Vault rejects the token. No error or log
// line carries a token, secret ID or device secret.
package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credsign/credsign/secrets"
)

// Store is the Vault secrets.Store. Create it with New; Close it to stop
// token renewal.
type Store struct {
	cfg    Config
	client *api.Client // main client; its token changes on re-login
	log    *slog.Logger
	// ctx lives until Close; the renewal and probe goroutines run under it.
	ctx context.Context

	loginMu  sync.Mutex         // serializes logins
	loggedIn chan *api.Secret   // newest login, for the renewal goroutine
	cancel   context.CancelFunc // stops the renewal goroutine
	wg       sync.WaitGroup
	once     sync.Once
	// down marks Vault as answering badly or refusing connections; see
	// attempts.
	down atomic.Bool
	// silent marks Vault as not answering at all; see health.go.
	silent silence
	// expiry is when the current token expires (Unix nanoseconds), 0 when
	// it does not.
	expiry atomic.Int64
	// ownersIndexed is set once the token owner index is known to cover
	// the records written before it existed (see indexTokenOwners).
	ownersIndexed atomic.Bool
}

// TokenExpiry returns when the store's current Vault token expires unless
// renewed or replaced, or the zero time for a token that does not expire.
func (s *Store) TokenExpiry() time.Time {
	if n := s.expiry.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// noteLease records the lifetime of the token just issued or renewed.
func (s *Store) noteLease(auth *api.SecretAuth) {
	if auth == nil || auth.LeaseDuration <= 0 {
		s.expiry.Store(0)
		return
	}
	s.expiry.Store(time.Now().Add(time.Duration(auth.LeaseDuration) * time.Second).UnixNano())
}

var _ secrets.Store = (*Store)(nil)

// Client retry policy: the client retries connection errors, 5xx and 429
// responses with back-off; the call's deadline (Config.Timeout) stops it.
const (
	maxRetries   = 6
	minRetryWait = 100 * time.Millisecond
	maxRetryWait = 1500 * time.Millisecond
)

// maxIdleConns is how many idle connections to Vault the client keeps.
const maxIdleConns = 256

// New connects to Vault, logs in (AppRole, Kubernetes) or checks the token,
// and starts token renewal. It fails within cfg.Timeout with a clear error
// when Vault cannot be reached or rejects the credentials.
//
// logger receives what happens between calls, never a secret: token renewal
// (debug), renewal failures and a token that will expire (warn), logging in
// again (info; a failed login is a warning while it is retried and an error
// when a request needed it), and Vault going silent or answering again (warn,
// info). nil discards them.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("vaultstore: config: %w", err)
	}
	apiCfg := api.DefaultConfig()
	if apiCfg.Error != nil {
		return nil, fmt.Errorf("vaultstore: config: %w", apiCfg.Error)
	}
	apiCfg.Address = cfg.Address
	apiCfg.Timeout = cfg.Timeout
	// Keep a connection for each request a boot storm has under way at once:
	// the default pool keeps GOMAXPROCS+1, and every other request would
	// open a connection and close it (in TIME_WAIT) when done.
	if t, ok := apiCfg.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConns, t.MaxIdleConnsPerHost = maxIdleConns, maxIdleConns
	}
	apiCfg.MaxRetries = maxRetries
	apiCfg.MinRetryWait = minRetryWait
	apiCfg.MaxRetryWait = maxRetryWait
	apiCfg.CheckRetry = checkRetry
	if cfg.CACert != "" {
		if err := apiCfg.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert}); err != nil {
			return nil, fmt.Errorf("vaultstore: CA certificate %s: %w", cfg.CACert, err)
		}
	}
	client, err := api.NewClient(apiCfg)
	if err != nil {
		return nil, fmt.Errorf("vaultstore: client: %w", err)
	}
	setNamespace(client, cfg.Namespace)
	client.SetToken(cfg.Token)
	if cfg.Auth != AuthToken {
		client.ClearToken()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{cfg: cfg, client: client, log: logger, loggedIn: make(chan *api.Secret, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	auth, err := s.start(ctx)
	if err != nil {
		s.stop()
		s.wg.Wait()
		s.closeIdle()
		return nil, fmt.Errorf("vaultstore: %w", err)
	}
	s.wg.Add(1)
	go s.keepToken(s.ctx, auth)
	return s, nil
}

// start logs in or checks the token, then checks the mount and the
// policy, so that a wrong address, token, mount or prefix fails New rather
// than the first request. It retries less than later calls: an address
// where nothing listens fails at once.
func (s *Store) start(ctx context.Context) (*api.Secret, error) {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	s.client.SetMaxRetries(1)
	defer s.client.SetMaxRetries(maxRetries)
	var (
		auth *api.Secret
		err  error
	)
	if s.cfg.Auth == AuthToken {
		auth, err = s.lookupSelf(ctx)
	} else {
		auth, err = s.login(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := s.checkMount(ctx); err != nil {
		return nil, err
	}
	if _, err := s.list(ctx, "devices/"); err != nil {
		return nil, fmt.Errorf("list %s: %w", s.metadataPath("devices/"), err)
	}
	if err := s.checkLayout(ctx); err != nil {
		return nil, err
	}
	return auth, nil
}

// checkMount checks that Config.Mount is a KV version 2 mount the token can
// use, with the endpoint the vault CLI uses for the same purpose.
func (s *Store) checkMount(ctx context.Context) error {
	sec, err := s.call(ctx, func() (*api.Secret, error) {
		return s.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+s.cfg.Mount)
	})
	if err == nil && (sec == nil || sec.Data == nil) {
		err = secrets.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("KV mount %q not found or not accessible: %w", s.cfg.Mount, err)
	}
	typ, _ := sec.Data["type"].(string)
	opts, _ := sec.Data["options"].(map[string]any)
	if version, _ := opts["version"].(string); typ != "kv" || version != "2" {
		return fmt.Errorf("mount %q is %s version %q, not KV version 2", s.cfg.Mount, typ, version)
	}
	return nil
}

func setNamespace(c *api.Client, ns string) {
	if ns == "" {
		c.ClearNamespace()
		return
	}
	c.SetNamespace(ns)
}

// lookupSelf checks the token and returns it as a renewable *api.Secret.
func (s *Store) lookupSelf(ctx context.Context) (*api.Secret, error) {
	sec, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		err = s.classify(ctx, err)
		if permissionDenied(err) {
			return nil, fmt.Errorf("token (VAULT_TOKEN) rejected by Vault at %s: %w", s.cfg.Address, err)
		}
		if errors.Is(err, secrets.ErrNotFound) {
			// Vault always has this endpoint: something else answers there.
			return nil, fmt.Errorf("check token: %s answered 404 to %s: is VAULT_ADDR the address of a Vault server?",
				s.cfg.Address, "/v1/auth/token/lookup-self")
		}
		return nil, fmt.Errorf("check token: %w", err)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("check token: empty answer from Vault at %s", s.cfg.Address)
	}
	ttl, err := sec.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("check token: ttl: %w", err)
	}
	renewable, err := sec.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("check token: renewable: %w", err)
	}
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   s.client.Token(),
		Renewable:     renewable,
		LeaseDuration: int(ttl / time.Second),
	}}, nil
}

// login logs in with AppRole or Kubernetes auth, sets the new token on the
// client, and passes the login to the renewal goroutine.
func (s *Store) login(ctx context.Context) (*api.Secret, error) {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	var (
		body map[string]any
		// The login's credential is read from file (what names it in
		// errors) into body[field].
		file, what, field string
		method            = s.cfg.Auth
	)
	switch s.cfg.Auth {
	case AuthAppRole:
		body = map[string]any{"role_id": s.cfg.RoleID}
		file, what, field = s.cfg.SecretIDFile, "approle login: secret ID file", "secret_id"
	case AuthKubernetes:
		body = map[string]any{"role": s.cfg.K8sRole}
		file, what, field = s.cfg.K8sTokenFile, "kubernetes login: service account token", "jwt"
	default:
		return nil, fmt.Errorf("cannot log in with %s auth", method)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	cred := strings.TrimSpace(string(b))
	body[field] = cred
	c, err := s.client.Clone()
	if err != nil {
		return nil, fmt.Errorf("%s login: %w", method, err)
	}
	c.ClearToken()
	setNamespace(c, s.cfg.Namespace)
	sec, err := c.Logical().WriteWithContext(ctx, "auth/"+s.cfg.AuthMount+"/login", body)
	if err != nil {
		return nil, fmt.Errorf("%s login at %s: %w", method, s.cfg.Address, s.classify(ctx, err, cred, s.cfg.RoleID))
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, fmt.Errorf("%s login at %s: no token in Vault's answer", method, s.cfg.Address)
	}
	s.client.SetToken(sec.Auth.ClientToken)
	select {
	case <-s.loggedIn:
	default:
	}
	s.loggedIn <- sec
	return sec, nil
}

// relogin logs in again after Vault rejected stale, unless another call
// already did. It reports whether the caller should retry.
func (s *Store) relogin(ctx context.Context, stale string) bool {
	if s.cfg.Auth == AuthToken {
		return false
	}
	if s.client.Token() != stale {
		return true
	}
	if _, err := s.login(ctx); err != nil {
		s.log.Error("vaultstore: Vault rejected the token and logging in again failed", "err", err)
		return false
	}
	s.log.Info("vaultstore: logged in again after Vault rejected the token", "auth", s.cfg.Auth)
	return true
}

// keepToken renews the token while Vault allows, then logs in again (AppRole,
// Kubernetes) and renews the new token, until Close.
func (s *Store) keepToken(ctx context.Context, auth *api.Secret) {
	defer s.wg.Done()
	// login queued auth for this goroutine already; New passes it directly.
	select {
	case <-s.loggedIn:
	default:
	}
	for auth != nil {
		auth = s.watch(ctx, auth)
	}
}

// watch renews auth until renewal ends and returns the token to watch next:
// one from a newer login, or nil when the store closes.
func (s *Store) watch(ctx context.Context, auth *api.Secret) *api.Secret {
	s.noteLease(auth.Auth)
	expires := auth.Auth != nil && auth.Auth.LeaseDuration > 0
	if expires {
		next, stop, err := s.renew(ctx, auth)
		if stop || next != nil {
			return next
		}
		if err != nil {
			s.log.Warn("vaultstore: token renewal failed", "err", err)
		} else {
			s.log.Info("vaultstore: token renewal ended", "auth", s.cfg.Auth)
		}
	}
	switch {
	case s.cfg.Auth == AuthToken:
		// A root or non-expiring token needs nothing; an expiring one given
		// as VAULT_TOKEN cannot be replaced by the store.
		if expires {
			s.log.Warn("vaultstore: VAULT_TOKEN can no longer be renewed and will expire; use approle or kubernetes auth to log in again automatically")
		}
		<-ctx.Done()
		return nil
	case !expires:
		select {
		case <-ctx.Done():
			return nil
		case fresh := <-s.loggedIn:
			return fresh
		}
	}
	return s.loginRetry(ctx)
}

// renew runs an api.LifetimeWatcher on auth until renewal ends (all results
// zero, or err), a newer login arrives (next) or ctx ends (stop).
func (s *Store) renew(ctx context.Context, auth *api.Secret) (next *api.Secret, stop bool, err error) {
	// The watcher's renewals take no context: a client without retries
	// keeps each within Config.Timeout, so Close is quick.
	wc, err := s.client.Clone()
	if err != nil {
		return nil, false, err
	}
	wc.SetMaxRetries(0)
	setNamespace(wc, s.cfg.Namespace)
	w, err := wc.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: auth})
	if err != nil {
		return nil, false, err
	}
	return s.runWatcher(ctx, w)
}

// runWatcher runs w until it ends, a newer login arrives or ctx ends, with
// results as for renew.
func (s *Store) runWatcher(ctx context.Context, w *api.LifetimeWatcher) (next *api.Secret, stop bool, err error) {
	done := w.DoneCh()
	go w.Start()
	for {
		select {
		case <-ctx.Done():
			w.Stop()
			<-done
			return nil, true, nil
		case fresh := <-s.loggedIn:
			w.Stop()
			<-done
			return fresh, false, nil
		case r := <-w.RenewCh():
			if r.Secret != nil && r.Secret.Auth != nil {
				s.noteLease(r.Secret.Auth)
				s.log.Debug("vaultstore: token renewed", "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
			}
		case err := <-done:
			if err != nil {
				err = s.classify(ctx, err)
			}
			return nil, false, err
		}
	}
}

// loginRetry logs in, retrying with back-off, until it succeeds or ctx ends.
func (s *Store) loginRetry(ctx context.Context) *api.Secret {
	wait := 500 * time.Millisecond
	for {
		lctx, cancel := s.callCtx(ctx)
		_, err := s.login(lctx)
		cancel()
		if err == nil {
			s.log.Info("vaultstore: logged in again", "auth", s.cfg.Auth)
			// login queued its token (or a newer login replaced it).
			return <-s.loggedIn
		}
		s.log.Warn("vaultstore: login failed, will retry", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait + rand.N(wait/2)):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// Ping checks that Vault answers and accepts the token.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	_, err := s.call(ctx, func() (*api.Secret, error) {
		return s.client.Auth().Token().LookupSelfWithContext(ctx)
	})
	if err != nil {
		return fmt.Errorf("vaultstore: ping: %w", err)
	}
	return nil
}

// Close stops token renewal and waits for it; it does not revoke the token.
// It is safe to call more than once.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.stop()
		s.wg.Wait()
		s.closeIdle()
	})
	return nil
}

// stop ends the store's context; under the silence lock, so that no probe
// starts (s.wg.Add) once the caller waits for the goroutines.
func (s *Store) stop() {
	s.silent.mu.Lock()
	defer s.silent.mu.Unlock()
	s.cancel()
}

func (s *Store) closeIdle() {
	s.client.CloneConfig().HttpClient.CloseIdleConnections()
}

// errCallTimeout is the cause of a call's context when Config.Timeout ran
// out (rather than a deadline of the caller's).
var errCallTimeout = errors.New("vaultstore: call timeout")

// callCtx bounds one store call and records its retried attempts.
func (s *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(withAttempts(ctx, &s.down), s.cfg.Timeout, errCallTimeout)
}

// call runs one Vault request; if Vault rejects the token and the store can
// log in again, it does and runs the request once more. Errors come back
// classified. While Vault is known to be silent it fails at once.
func (s *Store) call(ctx context.Context, op func() (*api.Secret, error), creds ...string) (*api.Secret, error) {
	if err := s.silentErr(); err != nil {
		return nil, err
	}
	tok := s.client.Token()
	sec, err := op()
	err = s.classify(ctx, err, creds...)
	if permissionDenied(err) && s.relogin(ctx, tok) {
		sec, err = op()
		err = s.classify(ctx, err, creds...)
	}
	return sec, err
}

// kvEntry is one KV v2 secret as read.
type kvEntry struct {
	data    json.RawMessage // nil when the latest version is deleted
	version int64           // latest version, 0 when nothing was ever written
}

func (s *Store) dataPath(rel string) string {
	return s.cfg.Mount + "/data/" + s.cfg.Prefix + rel
}

func (s *Store) metadataPath(rel string) string {
	return s.cfg.Mount + "/metadata/" + s.cfg.Prefix + rel
}

// read reads the latest version of rel. The answer is decoded once, into
// just what the store uses (the api package's Secret would decode every
// member into maps first).
func (s *Store) read(ctx context.Context, rel string) (kvEntry, error) {
	var e kvEntry
	_, err := s.call(ctx, func() (*api.Secret, error) {
		resp, err := s.client.Logical().ReadRawWithContext(ctx, s.dataPath(rel))
		if resp != nil {
			defer resp.Body.Close()
		}
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			// Never written, or its latest version deleted: then the
			// answer still carries the metadata (and its version).
			e = kvEntry{}
			var ans kvAnswer
			if json.NewDecoder(resp.Body).Decode(&ans) == nil {
				e.version = ans.Data.Metadata.Version
			}
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var ans kvAnswer
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
			return nil, fmt.Errorf("decode %s: %w", rel, err)
		}
		e = kvEntry{version: ans.Data.Metadata.Version}
		if d := ans.Data.Data; len(d) > 0 && string(d) != "null" {
			e.data = d
		}
		return nil, nil
	})
	if err != nil {
		return kvEntry{}, err
	}
	return e, nil
}

// kvAnswer is the part of a KV v2 read answer the store uses.
type kvAnswer struct {
	Data struct {
		Data     json.RawMessage `json:"data"`
		Metadata struct {
			Version int64 `json:"version"`
		} `json:"metadata"`
	} `json:"data"`
}

// write writes data to rel with check-and-set version cas (0: only if
// absent) and returns the new version. creds are scrubbed from errors.
func (s *Store) write(ctx context.Context, rel string, data any, cas int64, creds ...string) (int64, error) {
	body, err := json.Marshal(map[string]any{"data": data, "options": map[string]any{"cas": cas}})
	if err != nil {
		return 0, fmt.Errorf("%w: cannot encode as JSON", secrets.ErrInvalid)
	}
	sec, err := s.call(ctx, func() (*api.Secret, error) {
		return s.client.Logical().WriteBytesWithContext(ctx, s.dataPath(rel), body)
	}, creds...)
	clear(body)
	if err != nil {
		return 0, err
	}
	if sec == nil {
		return 0, fmt.Errorf("no answer data from Vault (is %q a KV version 2 mount?)", s.cfg.Mount)
	}
	v, ok := asInt(sec.Data["version"])
	if !ok {
		return 0, fmt.Errorf("no version in Vault's answer (is %q a KV version 2 mount?)", s.cfg.Mount)
	}
	return v, nil
}

// exists reports whether rel has metadata (any version, even deleted).
func (s *Store) exists(ctx context.Context, rel string) (bool, error) {
	sec, err := s.call(ctx, func() (*api.Secret, error) {
		return s.client.Logical().ReadWithContext(ctx, s.metadataPath(rel))
	})
	return err == nil && sec != nil, err
}

// destroy deletes rel's metadata and so every version of it.
func (s *Store) destroy(ctx context.Context, rel string) error {
	_, err := s.call(ctx, func() (*api.Secret, error) {
		return s.client.Logical().DeleteWithContext(ctx, s.metadataPath(rel))
	})
	return err
}

// list returns the sorted key names under the folder rel (ending in "/").
func (s *Store) list(ctx context.Context, rel string) ([]string, error) {
	sec, err := s.call(ctx, func() (*api.Secret, error) {
		return s.client.Logical().ListWithContext(ctx, s.metadataPath(rel))
	})
	if err != nil || sec == nil || sec.Data == nil {
		return nil, err
	}
	raw, _ := sec.Data["keys"].([]any)
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if k, ok := k.(string); ok {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// asInt reads a number the Vault client decoded as json.Number.
func asInt(v any) (int64, bool) {
	switch v := v.(type) {
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case float64:
		return int64(v), true
	}
	return 0, false
}
