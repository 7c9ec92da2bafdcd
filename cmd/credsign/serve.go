package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api"
	"github.com/credsign/credsign/cloud/registration"
	"github.com/credsign/credsign/internal/logbuf"
	"github.com/credsign/credsign/internal/metrics"
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

// serveFlags are the settings of `credsign serve`, each read from its flag
// in parseServeFlags (the Vault store's from the environment, in
// vaultConfigFromEnv).
type serveFlags struct {
	tpmEKCA string // TPM attestation
	// listen and TLS: the device plane, or every plane with one address
	addr            string
	tlsCert         string
	tlsKey          string
	clientCA        string
	insecureHTTP    bool
	issuer          string
	shutdownTimeout time.Duration
	// the admin plane
	adminAddr     string
	adminTLSCert  string
	adminTLSKey   string
	adminClientCA string
	// tokens and signing
	dev            bool
	adminTokenFile string
	maxDeviceTTL   time.Duration
	jwtAlg         string
	// store
	store        string
	dataDir      string
	storeKeyFile string
	// cache
	cache service.CacheConfig
	// limits
	ratePerMinute   float64
	rateBurst       int
	provRate        float64
	provBurst       int
	enrolRate       float64
	enrolBurst      int
	enrolFailures   int64
	rotationOverlap time.Duration
	minTokenLife    time.Duration
	maxBody         int64
	importIdle      time.Duration
	imports         int
	importsPerToken int
	// cloud registration: regAllowPrivate and regAllowHosts widen where
	// group registrations may call (registration.Client.AllowPrivate,
	// AllowHosts).
	// proofs of possession
	publicURL       string
	dpopNonce       bool
	cloudCAFile     string
	regAllowPrivate bool
	regAllowHosts   hostList
	// logging and audit
	logFlush        time.Duration
	logLevel        string
	accessLogSample int
	auditFile       string
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

// flagGroup is a titled group of serve's flags, as -h shows them.
type flagGroup struct {
	title string
	names []string
	// notes are lines printed after the group's flags.
	notes []string
}

// serveFlagGroups orders `credsign serve -h`; every flag is in one group
// (TestServeHelpGroups).
func serveFlagGroups() []flagGroup {
	vault := make([]string, 0, len(vaultEnv))
	for _, v := range vaultEnv {
		vault = append(vault, fmt.Sprintf("  %s\n    \t%s", v[0], v[1]))
	}
	return []flagGroup{
		{title: "Listen and TLS (the device plane; every plane when --admin-addr is not set)",
			names: []string{"addr", "tls-cert", "tls-key", "client-ca", "insecure-http", "issuer", "shutdown-timeout"}},
		{title: "Admin plane (admin and provisioner operations, /metrics, /openapi.yaml, /docs)",
			names: []string{"admin-addr", "admin-tls-cert", "admin-tls-key", "admin-client-ca"}},
		{title: "Tokens and signing", names: []string{"dev", "admin-token-file", "max-device-ttl", "jwt-alg", "token-rotation-overlap", "token-min-lifetime", "public-url", "dpop-require-nonce", "tpm-ek-ca"}},
		{title: "Store", names: []string{"store", "data-dir", "store-key-file"}},
		{title: "Vault (--store vault; environment variables)", notes: vault},
		{title: "Cache", names: []string{"cache-size", "cache-ttl", "cache-stale"}},
		{title: "Limits", names: []string{"rate-limit", "rate-burst", "provisioner-rate-limit", "provisioner-rate-burst",
			"enrolment-rate-limit", "enrolment-rate-burst", "enrolment-max-failures", "max-body-bytes",
			"import-idle-timeout", "imports", "imports-per-token"}},
		{title: "Cloud registration", names: []string{"cloud-ca-file", "registration-allow-private", "registration-allow-host"}},
		{title: "Logging and audit", names: []string{"log-level", "log-flush-interval", "access-log-sample", "audit-file"}},
	}
}

// printServeUsage writes serve's flags to w, group by group.
func printServeUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: credsign serve [flags]\n\nRuns the HTTP API. Stop it with SIGTERM or SIGINT; in-flight requests finish first.\nThe admin token comes from --admin-token-file or CREDSIGN_ADMIN_TOKEN (with --dev, one is generated when neither is set).")
	for _, g := range serveFlagGroups() {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.names {
			f := fs.Lookup(name)
			kind, usage := flag.UnquoteUsage(f)
			line := "  --" + f.Name
			if kind != "" {
				line += " " + kind
			}
			line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				line += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintln(w, line)
		}
		for _, n := range g.notes {
			fmt.Fprintln(w, n)
		}
	}
}

// parseServeFlags parses the flags of serve; -h writes the usage to help.
func parseServeFlags(args []string, help io.Writer) (serveFlags, error) {
	var f serveFlags
	fs := flag.NewFlagSet("credsign serve", flag.ContinueOnError)
	// Errors are one line (written by serve); the usage only on -h, to stdout.
	fs.SetOutput(io.Discard)
	// listen and TLS
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address (host:port; port 0 picks a free one)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) file; serves HTTPS, reloaded when the file changes")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key file for --tls-cert")
	fs.StringVar(&f.clientCA, "client-ca", "", "PEM CA bundle; when set, clients must present a certificate it signed")
	fs.BoolVar(&f.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy), on either plane")
	fs.StringVar(&f.issuer, "issuer", "", "iss claim of the JWTs credsign signs: this server's public URL (default http(s)://ADDR)")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish on SIGTERM/SIGINT")
	// admin plane
	fs.StringVar(&f.adminAddr, "admin-addr", "", "listen address of the admin plane; when set, --addr serves the device plane only (credentials, enrolment, JWKS, health) and 404s the rest")
	fs.StringVar(&f.adminTLSCert, "admin-tls-cert", "", "PEM certificate (chain) file of the admin plane; serves it over HTTPS, reloaded when the file changes")
	fs.StringVar(&f.adminTLSKey, "admin-tls-key", "", "PEM private key file for --admin-tls-cert")
	fs.StringVar(&f.adminClientCA, "admin-client-ca", "", "PEM CA bundle; when set, admin plane clients must present a certificate it signed")
	// tokens and signing
	fs.BoolVar(&f.dev, "dev", false, "development mode: generate and print an admin token when none is configured")
	fs.StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the admin tokens, one a line, all valid (else CREDSIGN_ADMIN_TOKEN); reloaded on change and on SIGHUP")
	fs.DurationVar(&f.maxDeviceTTL, "max-device-ttl", service.DefaultMaxDeviceTTL, "longest credential lifetime a device token may ask for (admin and provisioner tokens may ask up to the cloud's maximum)")
	fs.StringVar(&f.jwtAlg, "jwt-alg", "ES256", "algorithm of the JWT signing key created on first use (jwt and aws clouds): ES256, RS256 or EdDSA")
	// store
	fs.StringVar(&f.store, "store", "", "secret store: vault or file (default vault when VAULT_ADDR is set, else file)")
	fs.StringVar(&f.dataDir, "data-dir", "data", "directory of the embedded encrypted store (--store file)")
	fs.StringVar(&f.storeKeyFile, "store-key-file", "", "file holding the embedded store's key (base64 of 32 bytes), e.g. a systemd credential; else CREDSIGN_STORE_KEY, else the key file in --data-dir")
	// cache
	fs.IntVar(&f.cache.Size, "cache-size", service.DefaultCacheSize, "device records, and token records, cached for issuing")
	fs.DurationVar(&f.cache.TTL, "cache-ttl", service.DefaultCacheTTL, "how long a cached record is used without a store read: the bound on how late another replica's revoke (store outage or not) or delete (while the store answers) is honoured here; negative turns the cache off")
	fs.DurationVar(&f.cache.StaleFor, "cache-stale", service.DefaultStaleFor, "how long past --cache-ttl cached device and group records keep serving while the store does not answer (never token records or revocation lists); negative never")
	// limits
	fs.Float64Var(&f.ratePerMinute, "rate-limit", api.DefaultRatePerMinute, "requests per minute per device token; 0 turns rate limiting off for every token")
	fs.IntVar(&f.rateBurst, "rate-burst", api.DefaultRateBurst, "requests a device token may make in a burst")
	fs.Float64Var(&f.provRate, "provisioner-rate-limit", api.DefaultProvisionerRatePerMinute, "requests per minute per admin or provisioner token; 0 leaves them unlimited")
	fs.IntVar(&f.provBurst, "provisioner-rate-burst", api.DefaultProvisionerRateBurst, "requests an admin or provisioner token may make in a burst")
	fs.Float64Var(&f.enrolRate, "enrolment-rate-limit", api.DefaultEnrolmentRatePerMinute, "requests per minute per enrolment token (a batch of devices shares one); negative leaves them unlimited")
	fs.IntVar(&f.enrolBurst, "enrolment-rate-burst", api.DefaultEnrolmentRateBurst, "requests an enrolment token may make in a burst")
	fs.Int64Var(&f.enrolFailures, "enrolment-max-failures", service.DefaultMaxEnrolmentFailures, "failed registrations with the cloud after which an enrolment token enrols nobody (mint a new one)")
	fs.DurationVar(&f.rotationOverlap, "token-rotation-overlap", service.DefaultRotationOverlap, "how long a device token keeps working after the device rotated it (POST /v1/devices/{id}/tokens/rotate)")
	fs.DurationVar(&f.minTokenLife, "token-min-lifetime", service.DefaultMinTokenLifetime, "shortest lifetime (ttlSeconds) a device or provisioner token may be minted with")
	fs.StringVar(&f.tpmEKCA, "tpm-ek-ca", "", "PEM file of the CA certificates that issue TPM endorsement key certificates (the TPM makers' roots and intermediates); turns on TPM attestation at enrolment (POST /v1/enrol/attest)")
	fs.Int64Var(&f.maxBody, "max-body-bytes", api.DefaultMaxBodyBytes, "largest request body accepted")
	fs.DurationVar(&f.importIdle, "import-idle-timeout", api.DefaultImportIdleTimeout, "an import (POST /v1/imports) that sends no device line, or takes none of its results, this long is ended")
	fs.IntVar(&f.imports, "imports", api.DefaultImports, "imports under way at once on this server; more are answered 429")
	fs.IntVar(&f.importsPerToken, "imports-per-token", api.DefaultImportsPerToken, "imports under way at once for one token; more are answered 429")
	// cloud registration
	// proofs of possession
	fs.StringVar(&f.publicURL, "public-url", "", "URL devices address this server by, behind a proxy (https://host[:port][/prefix]): the htu of their DPoP proofs is checked against it instead of the request's scheme and Host")
	fs.BoolVar(&f.dpopNonce, "dpop-require-nonce", false, "refuse DPoP proofs without a server nonce (from the DPoP-Nonce response header) instead of accepting a 60s iat window")
	fs.StringVar(&f.cloudCAFile, "cloud-ca-file", "", "PEM CA bundle trusted, beside the system's roots, for the clouds' registration APIs (a TLS-inspecting proxy, an emulator)")
	fs.BoolVar(&f.regAllowPrivate, "registration-allow-private", false, "let group registrations reach addresses that are not public (loopback, private, link-local, ...): an emulator, a private endpoint; checked on each address dialled")
	fs.Var(&f.regAllowHosts, "registration-allow-host", "host a group registration may call besides the clouds' documented domains: name, *.domain or IP address; repeat or separate with commas")
	// logging and audit
	fs.StringVar(&f.logLevel, "log-level", "info", "least severe log lines written: debug, info, warn or error (audit lines and the listening, shutting down and stopped lines are always written)")
	fs.DurationVar(&f.logFlush, "log-flush-interval", 50*time.Millisecond, "how often log lines are written out in one batch (a crash loses at most this much of the log); 0 writes each line at once")
	fs.IntVar(&f.accessLogSample, "access-log-sample", 1, "write the access line of one in `N` successful credential issues; 0 writes none (failed requests and every other request are always logged)")
	fs.StringVar(&f.auditFile, "audit-file", "", "file the audit events are appended to, one JSON line each, written per event; - for stdout; default: with the diagnostic log on stderr")
	fs.Usage = func() {} // the flag package calls it on every error
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printServeUsage(help, fs)
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
	case (f.adminTLSCert == "") != (f.adminTLSKey == ""):
		return f, errors.New("--admin-tls-cert and --admin-tls-key go together")
	case f.adminClientCA != "" && f.adminTLSCert == "":
		return f, errors.New("--admin-client-ca needs --admin-tls-cert and --admin-tls-key")
	case f.adminAddr == "" && (f.adminTLSCert != "" || f.adminClientCA != ""):
		return f, errors.New("--admin-tls-cert and --admin-client-ca need --admin-addr")
	case f.adminAddr != "" && f.adminAddr == f.addr && !strings.HasSuffix(f.addr, ":0"):
		return f, errors.New("--admin-addr must differ from --addr")
	case f.accessLogSample < 0:
		return f, errors.New("--access-log-sample is a count (1 logs every successful issue, 0 none), not negative")
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
	case f.rotationOverlap < time.Second:
		return f, errors.New("--token-rotation-overlap must be at least 1s")
	case f.minTokenLife < time.Second:
		return f, errors.New("--token-min-lifetime must be at least 1s")
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
	if err := plainHTTPAllowed("--addr", f.addr, f.tlsCert != "", "--tls-cert and --tls-key", f.insecureHTTP); err != nil {
		return f, err
	}
	if f.adminAddr != "" {
		if err := plainHTTPAllowed("--admin-addr", f.adminAddr, f.adminTLSCert != "", "--admin-tls-cert and --admin-tls-key", f.insecureHTTP); err != nil {
			return f, err
		}
	}
	return f, nil
}

// plainHTTPAllowed refuses plain HTTP on an address that is not loopback,
// unless --insecure-http says a TLS-terminating proxy is in front.
func plainHTTPAllowed(flagName, addr string, tls bool, tlsFlags string, insecure bool) error {
	if tls || insecure {
		return nil
	}
	ok, err := isLoopback(flagName, addr)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("refusing plain HTTP on %s, which is not a loopback address: give %s, or --insecure-http behind a TLS-terminating proxy", addr, tlsFlags)
	}
	return nil
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

// isLoopback reports whether a listen address (of flag flagName) binds
// only loopback.
func isLoopback(flagName, addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("%s %q: %w", flagName, addr, err)
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
	auditSink, err := openAuditSink(f.auditFile, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: %v\n", err)
		return exitError
	}
	defer auditSink.Close()

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
	planes, err := newPlanes(f, logger)
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: configuring TLS: %v\n", err)
		return exitError
	}
	regClient, err := newRegistrationClient(f.cloudCAFile)
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: %v\n", err)
		return exitUsage
	}
	regClient.AllowPrivate, regClient.AllowHosts = f.regAllowPrivate, f.regAllowHosts

	// The composition root: metrics, the instrumented store, the service
	// and its HTTP layer.
	m := metrics.New()
	if v, ok := store.(interface{ TokenExpiry() time.Time }); ok {
		m.Expiry("credsign_vault_token_expiry_timestamp_seconds",
			"When the Vault token credsign uses expires unless renewed (Unix seconds; 0: it does not expire).", v.TokenExpiry)
	}
	for _, pl := range planes {
		if pl.certs != nil {
			m.Expiry(pl.expiryMetric, "When the TLS certificate being served on the "+pl.what+" expires (Unix seconds).", pl.certs.NotAfter)
		}
	}
	svc, err := service.New(service.Config{
		Store:                m.InstrumentStore(store),
		AdminTokens:          adminTokens,
		Metrics:              m,
		MaxDeviceTTL:         f.maxDeviceTTL,
		Cache:                f.cache,
		Registrar:            newRegistrar(regClient),
		Clouds:               registry,
		JWTAlg:               f.jwtAlg,
		Issuer:               f.issuerURL(),
		MaxEnrolmentFailures: f.enrolFailures,
		PublicURL:            f.publicURL,
		RequireDPoPNonce:     f.dpopNonce,
		TPMAttestation:       tpmVerifier,
		RotationOverlap:      f.rotationOverlap,
		MinTokenLifetime:     f.minTokenLife,
		Audit:                auditSink.writer(),
		Log:                  logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: %v\n", err)
		return exitUsage
	}
	handler, err := api.New(svc, api.Config{
		Logger:                   logger,
		RatePerMinute:            f.ratePerMinute,
		RateBurst:                f.rateBurst,
		ProvisionerRatePerMinute: f.provRate,
		ProvisionerRateBurst:     f.provBurst,
		EnrolmentRatePerMinute:   f.enrolRate,
		EnrolmentRateBurst:       f.enrolBurst,
		MaxBodyBytes:             f.maxBody,
		ImportIdleTimeout:        f.importIdle,
		Imports:                  f.imports,
		ImportsPerToken:          f.importsPerToken,
		AccessLogSample:          f.accessLogSample,
		AccessLogOff:             f.accessLogSample == 0,
	})
	if err != nil {
		fmt.Fprintf(stderr, "credsign serve: %v\n", err)
		return exitUsage
	}

	for _, pl := range planes {
		if err := pl.listen(handler.Handler(pl.plane), logger); err != nil {
			fmt.Fprintf(stderr, "credsign serve: %v\n", err)
			closePlanes(planes)
			return exitError
		}
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
	dp := planes[0]
	ev := life.Info().Str("addr", dp.ln.Addr().String()).Str("url", dp.url()).Str("plane", string(dp.plane)).
		Str("store", kind).Bool("dev", f.dev).Bool("tls", dp.tls != nil).
		Bool("clientCerts", f.clientCA != "").Float64("ratePerMinute", f.ratePerMinute).
		Float64("provisionerRatePerMinute", provRate).Float64("enrolmentRatePerMinute", enrolRate).
		Str("audit", auditSink.name)
	if len(planes) > 1 {
		ap := planes[1]
		ev = ev.Str("adminAddr", ap.ln.Addr().String()).Str("adminUrl", ap.url()).Bool("adminClientCerts", f.adminClientCA != "")
	}
	ev.Msg("listening")

	errc := make(chan error, len(planes))
	for _, pl := range planes {
		go func() { errc <- pl.serve() }()
	}
	select {
	case err := <-errc:
		logger.Error().Err(err).Msg("serving")
		closePlanes(planes)
		return exitError
	case <-ctx.Done():
	}
	life.Info().Dur("timeout", f.shutdownTimeout).Msg("shutting down; finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	code := exitOK
	for _, pl := range planes {
		if err := pl.srv.Shutdown(sctx); err != nil {
			logger.Error().Err(err).Str("plane", string(pl.plane)).Msg("shutting down")
			code = exitError
		}
	}
	if code != exitOK {
		return code
	}
	for range planes {
		<-errc
	}
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
		cfg, err := vaultConfigFromEnv(getenv)
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
