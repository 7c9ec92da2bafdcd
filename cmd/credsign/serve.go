package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api"
	"github.com/credsign/credsign/cloud/registration"
	"github.com/credsign/credsign/internal/certreload"
	"github.com/credsign/credsign/internal/logbuf"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/secrets/vaultstore"
	"github.com/credsign/credsign/service"
	"github.com/credsign/credsign/service/tpmattest"
)

// HTTP server limits.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// serveFlags are the flags of `credsign serve`.
type serveFlags struct {
	dev             bool
	tpmEKCA         string
	addr            string
	dataDir         string
	store           string
	tlsCert         string
	tlsKey          string
	clientCA        string
	insecureHTTP    bool
	ratePerMinute   float64
	rateBurst       int
	provRate        float64
	provBurst       int
	enrolRate       float64
	enrolBurst      int
	enrolFailures   int64
	maxBody         int64
	importIdle      time.Duration
	imports         int
	importsPerToken int
	adminTokenFile  string
	shutdownTimeout time.Duration
	maxDeviceTTL    time.Duration
	cache           service.CacheConfig
	jwtAlg          string
	issuer          string
	storeKeyFile    string
	cloudCAFile     string
	logFlush        time.Duration
	logLevel        string
	// regAllowPrivate and regAllowHosts widen where group registrations
	// may call (registration.Client.AllowPrivate, AllowHosts).
	regAllowPrivate bool
	regAllowHosts   hostList
}

// hostList is a repeatable flag of allowed hosts, each also a
// comma-separated list.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

// Set implements flag.Value.
func (h *hostList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if err := registration.CheckHostPattern(p); err != nil {
			return err
		}
		*h = append(*h, p)
	}
	return nil
}

// logLevels are the values of --log-level.
var logLevels = map[string]zerolog.Level{
	"debug": zerolog.DebugLevel, "info": zerolog.InfoLevel, "warn": zerolog.WarnLevel, "error": zerolog.ErrorLevel,
}

// validLogLevel reports whether v is one of logLevels.
func validLogLevel(v string) bool {
	_, ok := logLevels[v]
	return ok
}

// parseServeFlags parses the flags of serve; -h writes the usage to help.
func parseServeFlags(args []string, help io.Writer) (serveFlags, error) {
	var f serveFlags
	fs := flag.NewFlagSet("credsign serve", flag.ContinueOnError)
	// Errors are one line (written by serve); the usage only on -h, to stdout.
	fs.SetOutput(io.Discard)
	fs.BoolVar(&f.dev, "dev", false, "development mode: generate and print an admin token when none is configured")
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address (host:port; port 0 picks a free one)")
	fs.StringVar(&f.dataDir, "data-dir", "data", "directory of the embedded encrypted store (--store file)")
	fs.StringVar(&f.storeKeyFile, "store-key-file", "", "file holding the embedded store's key (base64 of 32 bytes), e.g. a systemd credential; else CREDSIGN_STORE_KEY, else the key file in --data-dir")
	fs.StringVar(&f.store, "store", "", "secret store: vault or file (default vault when VAULT_ADDR is set, else file)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) file; serves HTTPS, reloaded when the file changes")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key file for --tls-cert")
	fs.StringVar(&f.clientCA, "client-ca", "", "PEM CA bundle; when set, clients must present a certificate it signed")
	fs.BoolVar(&f.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy)")
	fs.Float64Var(&f.ratePerMinute, "rate-limit", api.DefaultRatePerMinute, "requests per minute per device token; 0 turns rate limiting off for every token")
	fs.IntVar(&f.rateBurst, "rate-burst", api.DefaultRateBurst, "requests a device token may make in a burst")
	fs.Float64Var(&f.provRate, "provisioner-rate-limit", api.DefaultProvisionerRatePerMinute, "requests per minute per admin or provisioner token; 0 leaves them unlimited")
	fs.IntVar(&f.provBurst, "provisioner-rate-burst", api.DefaultProvisionerRateBurst, "requests an admin or provisioner token may make in a burst")
	fs.Float64Var(&f.enrolRate, "enrolment-rate-limit", api.DefaultEnrolmentRatePerMinute, "requests per minute per enrolment token (a batch of devices shares one); negative leaves them unlimited")
	fs.IntVar(&f.enrolBurst, "enrolment-rate-burst", api.DefaultEnrolmentRateBurst, "requests an enrolment token may make in a burst")
	fs.Int64Var(&f.enrolFailures, "enrolment-max-failures", service.DefaultMaxEnrolmentFailures, "failed registrations with the cloud after which an enrolment token enrols nobody (mint a new one)")
	fs.StringVar(&f.tpmEKCA, "tpm-ek-ca", "", "PEM file of the CA certificates that issue TPM endorsement key certificates (the TPM makers' roots and intermediates); turns on TPM attestation at enrolment (POST /v1/enrol/attest)")
	fs.Int64Var(&f.maxBody, "max-body-bytes", api.DefaultMaxBodyBytes, "largest request body accepted")
	fs.DurationVar(&f.importIdle, "import-idle-timeout", api.DefaultImportIdleTimeout, "an import (POST /v1/imports) that sends no device line, or takes none of its results, this long is ended")
	fs.IntVar(&f.imports, "imports", api.DefaultImports, "imports under way at once on this server; more are answered 429")
	fs.IntVar(&f.importsPerToken, "imports-per-token", api.DefaultImportsPerToken, "imports under way at once for one token; more are answered 429")
	fs.StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the admin tokens, one a line, all valid (else CREDSIGN_ADMIN_TOKEN); reloaded on change and on SIGHUP")
	fs.DurationVar(&f.maxDeviceTTL, "max-device-ttl", service.DefaultMaxDeviceTTL, "longest credential lifetime a device token may ask for (admin and provisioner tokens may ask up to the cloud's maximum)")
	fs.IntVar(&f.cache.Size, "cache-size", service.DefaultCacheSize, "device records, and token records, cached for issuing")
	fs.DurationVar(&f.cache.TTL, "cache-ttl", service.DefaultCacheTTL, "how long a cached record is used without a store read: the bound on how late another replica's revoke (store outage or not) or delete (while the store answers) is honoured here; negative turns the cache off")
	fs.DurationVar(&f.cache.StaleFor, "cache-stale", service.DefaultStaleFor, "how long past --cache-ttl cached device and group records keep serving while the store does not answer (never token records or revocation lists); negative never")
	fs.StringVar(&f.jwtAlg, "jwt-alg", "ES256", "algorithm of the JWT signing key created on first use (jwt and aws clouds): ES256, RS256 or EdDSA")
	fs.StringVar(&f.issuer, "issuer", "", "iss claim of the JWTs credsign signs: this server's public URL (default http(s)://ADDR)")
	fs.StringVar(&f.cloudCAFile, "cloud-ca-file", "", "PEM CA bundle trusted, beside the system's roots, for the clouds' registration APIs (a TLS-inspecting proxy, an emulator)")
	fs.BoolVar(&f.regAllowPrivate, "registration-allow-private", false, "let group registrations reach addresses that are not public (loopback, private, link-local, ...): an emulator, a private endpoint; checked on each address dialled")
	fs.Var(&f.regAllowHosts, "registration-allow-host", "host a group registration may call besides the clouds' documented domains: name, *.domain or IP address; repeat or separate with commas")
	fs.DurationVar(&f.logFlush, "log-flush-interval", 50*time.Millisecond, "how often log lines are written out in one batch (a crash loses at most this much of the log); 0 writes each line at once")
	fs.StringVar(&f.logLevel, "log-level", "info", "least severe log lines written: debug, info, warn or error (audit lines and the listening, shutting down and stopped lines are always written)")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish on SIGTERM/SIGINT")
	fs.Usage = func() {} // the flag package calls it on every error
	usage := func() {
		fs.SetOutput(help)
		fmt.Fprintln(help, "usage: credsign serve [flags]\n\nRuns the HTTP API. Stop it with SIGTERM or SIGINT; in-flight requests finish first.\nThe admin token comes from --admin-token-file or CREDSIGN_ADMIN_TOKEN (with --dev, one is generated when neither is set).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
		}
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch {
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return f, errors.New("--tls-cert and --tls-key go together")
	case f.clientCA != "" && f.tlsCert == "":
		return f, errors.New("--client-ca needs --tls-cert and --tls-key")
	case f.store != "" && f.store != "vault" && f.store != "file":
		return f, fmt.Errorf("--store is vault or file, not %q", f.store)
	case f.rateBurst < 1 && f.ratePerMinute > 0:
		return f, errors.New("--rate-burst must be at least 1")
	case f.provBurst < 1 && f.provRate > 0:
		return f, errors.New("--provisioner-rate-burst must be at least 1")
	case f.enrolRate == 0:
		return f, errors.New("--enrolment-rate-limit is a rate per minute (negative leaves enrolment tokens unlimited), not 0")
	case f.enrolBurst < 1 && f.enrolRate > 0:
		return f, errors.New("--enrolment-rate-burst must be at least 1")
	case f.enrolFailures < 1:
		return f, errors.New("--enrolment-max-failures must be at least 1")
	case f.cache.TTL == 0 || f.cache.StaleFor == 0:
		return f, errors.New("--cache-ttl and --cache-stale are durations (negative turns them off), not 0")
	case f.maxDeviceTTL < time.Second:
		return f, errors.New("--max-device-ttl must be at least 1s")
	case f.importIdle < time.Second:
		return f, errors.New("--import-idle-timeout must be at least 1s")
	case f.imports < 1 || f.importsPerToken < 1:
		return f, errors.New("--imports and --imports-per-token must be at least 1")
	case !validLogLevel(f.logLevel):
		return f, fmt.Errorf("--log-level is debug, info, warn or error, not %q", f.logLevel)
	}
	if f.tlsCert == "" && !f.insecureHTTP {
		ok, err := isLoopback(f.addr)
		if err != nil {
			return f, err
		}
		if !ok {
			return f, fmt.Errorf("refusing plain HTTP on %s, which is not a loopback address: give --tls-cert and --tls-key, or --insecure-http behind a TLS-terminating proxy", f.addr)
		}
	}
	return f, nil
}

// issuerURL is --issuer, or the URL of the listen address.
func (f serveFlags) issuerURL() string {
	if f.issuer != "" {
		return f.issuer
	}
	if f.tlsCert != "" {
		return "https://" + f.addr
	}
	return "http://" + f.addr
}

// isLoopback reports whether a listen address binds only loopback.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("--addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// runServe is `credsign serve`.
func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return serve(ctx, args, os.Getenv, stdout, stderr)
}

// serve runs the server until ctx is done. It writes JSON logs to stderr;
// the "listening" line carries the actual address (useful with port 0). A
// generated admin token goes to stdout, never into the logs.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	f, err := parseServeFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: %v\n", err)
		return exitUsage
	}
	// Log lines go out in batches; what serve writes to stderr itself goes
	// through the same buffer, so that the order holds, and out on return.
	logOut := logbuf.New(stderr, f.logFlush)
	defer logOut.Close()
	stderr = logOut
	// life writes the lines that say the server is listening and stopping
	// whatever --log-level says (the listening line carries the address);
	// logger writes the rest at --log-level and above.
	life := zerolog.New(logOut).With().Timestamp().Logger()
	logger := life.Level(logLevels[f.logLevel])

	adminTokens, adminSum, generated, err := adminTokens(f, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: %v\n", err)
		return exitUsage
	}

	store, kind, err := openStore(ctx, f, getenv, logger)
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: %v\n", err)
		return exitError
	}
	defer func() {
		if err := store.Close(); err != nil {
			logger.Error().Err(err).Msg("closing the secret store")
		}
	}()

	var expiries []api.Expiry
	if v, ok := store.(interface{ TokenExpiry() time.Time }); ok {
		expiries = append(expiries, api.Expiry{Name: "credsign_vault_token_expiry_timestamp_seconds",
			Help: "When the Vault token credsign uses expires unless renewed (Unix seconds; 0: it does not expire).", At: v.TokenExpiry})
	}
	var reloader *certreload.Reloader
	if f.tlsCert != "" {
		if reloader, err = certReloader(f, logger); err != nil {
			fmt.Fprintf(stderr, "credsign serve: configuring TLS: %v\n", err)
			return exitError
		}
		expiries = append(expiries, api.Expiry{Name: "credsign_tls_certificate_expiry_timestamp_seconds",
			Help: "When the TLS certificate being served expires (Unix seconds).", At: reloader.NotAfter})
	}

	var tpmVerifier *tpmattest.Verifier
	if f.tpmEKCA != "" {
		b, err := os.ReadFile(f.tpmEKCA)
		if err == nil {
			tpmVerifier, err = tpmattest.New(tpmattest.Config{CAs: b})
		}
		if err != nil {
			fmt.Fprintf(stderr, "credsign serve: --tpm-ek-ca: %v\n", err)
			return exitUsage
		}
	}
	regClient, err := newRegistrationClient(f.cloudCAFile)
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: %v\n", err)
		return exitUsage
	}
	regClient.AllowPrivate, regClient.AllowHosts = f.regAllowPrivate, f.regAllowHosts
	handler, err := api.New(api.Config{
		Store:                    store,
		AdminTokens:              adminTokens,
		Logger:                   logger,
		RatePerMinute:            f.ratePerMinute,
		RateBurst:                f.rateBurst,
		ProvisionerRatePerMinute: f.provRate,
		ProvisionerRateBurst:     f.provBurst,
		EnrolmentRatePerMinute:   f.enrolRate,
		EnrolmentRateBurst:       f.enrolBurst,
		MaxEnrolmentFailures:     f.enrolFailures,
		TPMAttestation:           tpmVerifier,
		MaxBodyBytes:             f.maxBody,
		ImportIdleTimeout:        f.importIdle,
		Imports:                  f.imports,
		ImportsPerToken:          f.importsPerToken,
		MaxDeviceTTL:             f.maxDeviceTTL,
		Cache:                    f.cache,
		JWTAlg:                   f.jwtAlg,
		Issuer:                   f.issuerURL(),
		Expiries:                 expiries,
		Registrar:                newRegistrar(regClient),
		Clouds:                   registry,
	})
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: %v\n", err)
		return exitUsage
	}

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          stdlog.New(logger.With().Str("component", "http").Logger(), "", 0),
	}
	if reloader != nil {
		if srv.TLSConfig, err = tlsConfig(f, reloader); err != nil {
			fmt.Fprintf(stderr, "credsign serve: configuring TLS: %v\n", err)
			return exitError
		}
	}

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		// One plain line: "listen tcp 127.0.0.1:8080: bind: address already in use".
		fmt.Fprintf(stderr, "credsign serve: cannot listen on %s: %v\n", f.addr, errors.Unwrap(err))
		return exitError
	}
	if generated {
		fmt.Fprintf(stdout, "\n"+
			"credsign serve --dev: generated an admin token for this run (shown once, not stored;\n"+
			"set CREDSIGN_ADMIN_TOKEN to choose your own):\n\n"+
			"    export CREDSIGN_ADMIN_TOKEN=%s\n\n", adminTokens[0])
	}
	provRate := f.provRate
	if f.ratePerMinute <= 0 {
		provRate = 0 // --rate-limit 0 turns every limit off
	}
	enrolRate := max(f.enrolRate, 0)
	if f.ratePerMinute <= 0 {
		enrolRate = 0
	}
	if f.adminTokenFile != "" {
		// Notify before the listening line: from then on a SIGHUP reloads.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		tick := time.NewTicker(adminTokenPoll)
		wctx, stopWatch := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			watchAdminTokens(wctx, f.adminTokenFile, adminSum, hup, tick.C, handler, logger)
		}()
		defer func() { stopWatch(); <-watched; signal.Stop(hup); tick.Stop() }()
	}
	scheme := "http"
	if srv.TLSConfig != nil {
		scheme = "https"
	}
	life.Info().Str("addr", ln.Addr().String()).Str("url", scheme+"://"+ln.Addr().String()).
		Str("store", kind).Bool("dev", f.dev).Bool("tls", srv.TLSConfig != nil).
		Bool("clientCerts", f.clientCA != "").Float64("ratePerMinute", f.ratePerMinute).
		Float64("provisionerRatePerMinute", provRate).Float64("enrolmentRatePerMinute", enrolRate).Msg("listening")

	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		logger.Error().Err(err).Msg("serving")
		return exitError
	case <-ctx.Done():
	}
	life.Info().Dur("timeout", f.shutdownTimeout).Msg("shutting down; finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Error().Err(err).Msg("shutting down")
		return exitError
	}
	<-errc
	life.Info().Msg("stopped")
	return exitOK
}

// adminTokens finds the admin tokens: --admin-token-file, else
// CREDSIGN_ADMIN_TOKEN, else (with --dev) a generated one.
// With the file, sum is the SHA-256 of what it read.
func adminTokens(f serveFlags, getenv func(string) string) (tokens []string, sum [sha256.Size]byte, generated bool, err error) {
	if f.adminTokenFile != "" {
		ts, sum, err := readAdminTokens(f.adminTokenFile)
		return ts, sum, false, err
	}
	if t := getenv("CREDSIGN_ADMIN_TOKEN"); t != "" {
		return []string{t}, sum, false, nil
	}
	if !f.dev {
		return nil, sum, false, errors.New("no admin token: set CREDSIGN_ADMIN_TOKEN or --admin-token-file (or try --dev)")
	}
	t, err := service.NewAdminToken()
	return []string{t}, sum, true, err
}

// readAdminTokens reads an --admin-token-file and returns its tokens and
// the SHA-256 of its content. Errors never hold a token's text.
func readAdminTokens(path string) ([]string, [sha256.Size]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, [sha256.Size]byte{}, fmt.Errorf("reading --admin-token-file: %w", err)
	}
	sum := sha256.Sum256(b)
	ts, err := parseAdminTokens(string(b))
	if err != nil {
		return nil, sum, fmt.Errorf("--admin-token-file %s: %w", path, err)
	}
	return ts, sum, nil
}

// parseAdminTokens returns the tokens of an admin token file: one a line,
// blank lines and lines starting with # left out; at least one, each fit to
// be an admin token (service.CheckAdminToken).
func parseAdminTokens(text string) ([]string, error) {
	var ts []string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := service.CheckAdminToken(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		ts = append(ts, line)
	}
	if len(ts) == 0 {
		return nil, errors.New("holds no admin token")
	}
	return ts, nil
}

// adminTokenPoll is how often serve looks at --admin-token-file for a
// change (a variable so that tests can look more often).
var adminTokenPoll = 5 * time.Second

// watchAdminTokens reloads --admin-token-file into h on a signal from hup
// and, at each tick, when its content changed from the one whose SHA-256 is
// last, until ctx is done. A file that cannot be used leaves the tokens as they were, with
// one warning (no token text) per change.
func watchAdminTokens(ctx context.Context, path string, last [sha256.Size]byte, hup <-chan os.Signal, tick <-chan time.Time, h *api.Server, logger zerolog.Logger) {
	for {
		var trigger string
		select {
		case <-ctx.Done():
			return
		case <-hup:
			trigger = "SIGHUP"
		case <-tick:
			trigger = "change"
		}
		ts, sum, err := readAdminTokens(path)
		if trigger == "change" && sum == last {
			continue
		}
		last = sum
		if err == nil {
			err = h.SetAdminTokens(ctx, ts)
		}
		if err != nil {
			logger.Warn().Err(err).Str("trigger", trigger).Msg("admin token file could not be used; keeping the admin tokens in use")
			continue
		}
		logger.Info().Str("file", path).Str("trigger", trigger).Int("count", len(ts)).Msg("admin tokens reloaded")
	}
}

// openStore opens the store --store names (or the default).
func openStore(ctx context.Context, f serveFlags, getenv func(string) string, logger zerolog.Logger) (secrets.Store, string, error) {
	kind := f.store
	if kind == "" {
		kind = "file"
		if getenv("VAULT_ADDR") != "" {
			kind = "vault"
		}
	}
	if kind == "vault" {
		cfg, err := vaultstore.ConfigFromEnv()
		if err != nil {
			return nil, kind, fmt.Errorf("configuring the Vault store: %w", err)
		}
		// The Vault store logs token renewal, re-login and expiry warnings
		// through log/slog; they go to the server's log like everything else.
		s, err := vaultstore.New(ctx, cfg, slog.New(zerolog.NewSlogHandler(logger.With().Str("component", "vault").Logger())))
		if err != nil {
			return nil, kind, fmt.Errorf("opening the Vault store: %w", err)
		}
		return s, kind, nil
	}
	cfg := filestore.Config{Dir: f.dataDir}
	if f.storeKeyFile != "" {
		b, err := os.ReadFile(f.storeKeyFile)
		if err != nil {
			return nil, kind, fmt.Errorf("reading --store-key-file: %w", err)
		}
		key, err := filestore.ParseKey(b)
		clear(b)
		if err != nil {
			return nil, kind, fmt.Errorf("--store-key-file %s: %w", f.storeKeyFile, err)
		}
		cfg.Key = key
	} else if v := getenv(filestore.EnvKey); v != "" {
		key, err := filestore.ParseKey([]byte(v))
		if err != nil {
			return nil, kind, fmt.Errorf("reading %s: %w", filestore.EnvKey, err)
		}
		cfg.Key = key
	}
	s, err := filestore.Open(cfg)
	if err != nil {
		return nil, kind, fmt.Errorf("opening the file store in %s: %w", f.dataDir, err)
	}
	return s, kind, nil
}

// certReloader loads --tls-cert and --tls-key and reloads them when they change.
func certReloader(f serveFlags, logger zerolog.Logger) (*certreload.Reloader, error) {
	return certreload.New(f.tlsCert, f.tlsKey, func(err error) {
		if err != nil {
			logger.Warn().Err(err).Msg("TLS certificate changed but could not be loaded; keeping the old one")
			return
		}
		logger.Info().Str("file", f.tlsCert).Msg("TLS certificate reloaded")
	})
}

// tlsConfig builds the TLS 1.2+ configuration with a reloading certificate
// and, with --client-ca, required client certificates.
func tlsConfig(f serveFlags, rl *certreload.Reloader) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: rl.GetCertificate}
	if f.clientCA != "" {
		pem, err := os.ReadFile(f.clientCA)
		if err != nil {
			return nil, fmt.Errorf("reading --client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca %s holds no PEM certificate", f.clientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
