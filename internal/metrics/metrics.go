// Package metrics holds the service's Prometheus collectors. No label ever
// carries a secret, a token or a device ID: routes are templates
// ("/v1/devices/{id}"), clouds come from the signing registry.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/credsign/credsign/secrets"
)

// Issuance outcomes.
const (
	OutcomeIssued   = "issued"
	OutcomeRejected = "rejected" // the request or the device is invalid for the recipe
	OutcomeDenied   = "denied"   // the caller may not have this device's credentials
	OutcomeNotFound = "not_found"
	OutcomeError    = "error"
)

// Enrolment outcomes (besides OutcomeRejected, OutcomeDenied, OutcomeError).
const (
	OutcomeEnrolled = "enrolled"
	OutcomeExists   = "exists" // the device ID is taken: an enrolment never hands out a token for it
)

// Metrics are the collectors of one server, registered on their own registry.
type Metrics struct {
	// Registry holds every collector below plus the Go and process collectors.
	Registry *prometheus.Registry

	issuances    *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	// issued, requests and lookups are the series of issuances,
	// httpDuration and cache that the warm issuance path counts on.
	issued       series[[2]string, prometheus.Counter]
	requests     series[requestLabels, prometheus.Observer]
	lookups      series[[2]string, prometheus.Counter]
	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	cache        *prometheus.CounterVec
	enrolments   *prometheus.CounterVec
	auditFailed  prometheus.Counter
}

// New creates and registers the collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		issuances: counter("credsign_credentials_issued_total",
			"Credential requests by cloud and outcome (issued, rejected, denied, not_found, error).", "cloud", "outcome"),
		httpDuration: histogram("credsign_http_request_duration_seconds",
			"HTTP request latency by route template, method and status code.", "route", "method", "code"),
		storeLatency: histogram("credsign_store_operation_duration_seconds",
			"Secret store operation latency by operation.", "op"),
		storeErrors: counter("credsign_store_errors_total",
			"Secret store operations that failed, by operation and kind (not_found, conflict, invalid, unavailable, other).", "op", "kind"),
		cache: counter("credsign_cache_lookups_total",
			"Record cache lookups by kind (device, token, group) and result (hit, miss, stale: served from cache while the store is unavailable).", "kind", "result"),
		enrolments: counter("credsign_enrolments_total",
			"Enrolments with an enrolment token by cloud and outcome (enrolled, rejected, denied, exists, error).", "cloud", "outcome"),
		auditFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "credsign_audit_write_failures_total",
			Help: "Audit events the audit sink (--audit-file) failed to take; each was written to the diagnostic log instead."}),
	}
	m.Registry.MustRegister(m.issuances, m.httpDuration, m.storeLatency, m.storeErrors, m.cache, m.enrolments, m.auditFailed, buildInfo(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Export the enrolment counter from the start, not from the first
	// enrolment: these are the outcomes an enrolment can have before its
	// group (and so its cloud) is read. Clouds adds the per-cloud series.
	for _, o := range []string{OutcomeDenied, OutcomeError} {
		m.enrolments.WithLabelValues("none", o)
	}
	return m
}

// enrolmentOutcomes are every outcome an enrolment for a known cloud can
// have.
var enrolmentOutcomes = []string{OutcomeEnrolled, OutcomeRejected, OutcomeDenied, OutcomeExists, OutcomeError}

// Clouds exports the enrolment counter at zero for every outcome of each of
// the named clouds, so that a rate over it exists before the first
// enrolment.
func (m *Metrics) Clouds(names ...string) {
	for _, c := range names {
		for _, o := range enrolmentOutcomes {
			m.enrolments.WithLabelValues(c, o)
		}
	}
}

// buildInfo is credsign_build_info: 1, labelled with the build's module
// version ("(devel)" for a build from a checkout), VCS revision (empty when
// the build recorded none, "-dirty" appended for a modified tree) and Go
// version, as `credsign --version` reads them.
func buildInfo() prometheus.Collector {
	version, revision, goversion := "(unknown)", "", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && revision != "" {
			revision += "-dirty"
		}
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "credsign_build_info",
		Help: "1, labelled with the build's version, VCS revision and Go version."}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(version, revision, goversion).Set(1)
	return g
}

// counter is a counter vector.
func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// histogram is a latency histogram in seconds, with the default buckets.
func histogram(name, help string, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: prometheus.DefBuckets}, labels)
}

// Issued counts one credential request for cloud ("none" when the device
// was not read) with the given outcome.
func (m *Metrics) Issued(cloud, outcome string) {
	if cloud == "" {
		cloud = "none"
	}
	m.issued.get([2]string{cloud, outcome}, func() prometheus.Counter { return m.issuances.WithLabelValues(cloud, outcome) }).Inc()
}

// Enrolled counts one enrolment for cloud ("none" when the group was not
// read) with the given outcome.
func (m *Metrics) Enrolled(cloud, outcome string) {
	if cloud == "" {
		cloud = "none"
	}
	m.enrolments.WithLabelValues(cloud, outcome).Inc()
}

// AuditWriteFailed counts an audit event the audit sink failed to take.
func (m *Metrics) AuditWriteFailed() { m.auditFailed.Inc() }

// Expiry exports at() as a gauge of Unix seconds named name (an expiry the
// alerting rules watch: the Vault token's, the TLS certificate's). A zero
// time is exported as 0.
func (m *Metrics) Expiry(name, help string, at func() time.Time) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
		t := at()
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}))
}

// Cache counts one cache lookup of kind ("device", "token") with result
// ("hit", "miss", "stale").
func (m *Metrics) Cache(kind, result string) {
	m.lookups.get([2]string{kind, result}, func() prometheus.Counter { return m.cache.WithLabelValues(kind, result) }).Inc()
}

// ObserveRequest records the latency of one HTTP request. Methods other
// than the standard ones are counted as "other": a client may send any
// token as a method, and each would otherwise become a new series.
func (m *Metrics) ObserveRequest(route, method string, code int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
	default:
		method = "other"
	}
	m.requests.get(requestLabels{route, method, code}, func() prometheus.Observer {
		return m.httpDuration.WithLabelValues(route, method, strconv.Itoa(code))
	}).Observe(d.Seconds())
}

// requestLabels are the labels of a series of httpDuration.
type requestLabels struct {
	route, method string
	code          int
}

// series keeps the series of one vector by their labels, found in one
// lookup on the paths every request takes, where the vector's
// WithLabelValues would hash and check the label values each time. The
// labels are few (routes are templates, clouds come from the registry,
// outcomes and kinds are constants), so it stays small.
type series[K comparable, M any] struct{ m sync.Map }

// get returns the series of labels k, made by newSeries the first time.
func (s *series[K, M]) get(k K, newSeries func() M) M {
	if v, ok := s.m.Load(k); ok {
		return v.(M)
	}
	v, _ := s.m.LoadOrStore(k, newSeries())
	return v.(M)
}

func (m *Metrics) observeStore(op string, start time.Time, err error) {
	m.storeLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err == nil {
		return
	}
	kind := "other"
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		kind = "not_found"
	case errors.Is(err, secrets.ErrConflict):
		kind = "conflict"
	case errors.Is(err, secrets.ErrInvalid):
		kind = "invalid"
	case errors.Is(err, secrets.ErrUnavailable):
		kind = "unavailable"
	}
	m.storeErrors.WithLabelValues(op, kind).Inc()
}

// timed runs call as the store operation op: it times it and counts its
// error by kind.
func timed[T any](m *Metrics, op string, call func() (T, error)) (T, error) {
	start := time.Now()
	v, err := call()
	m.observeStore(op, start, err)
	return v, err
}

// timedErr is timed for an operation that returns only an error.
func timedErr(m *Metrics, op string, call func() error) error {
	_, err := timed(m, op, func() (struct{}, error) { return struct{}{}, call() })
	return err
}

// InstrumentStore wraps s so that every call is timed and its errors
// counted. The wrapper writes in bulk (secrets.BulkDeviceStore) exactly
// when s does.
func (m *Metrics) InstrumentStore(s secrets.Store) secrets.Store {
	if _, ok := s.(secrets.BulkDeviceStore); ok {
		return &bulkStore{store{s: s, m: m}}
	}
	return &store{s: s, m: m}
}

type store struct {
	s secrets.Store
	m *Metrics
}

// Unwrap implements secrets.Wrapper.
func (s *store) Unwrap() secrets.Store { return s.s }

func (s *store) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	return timed(s.m, "get_device", func() (secrets.Device, error) { return s.s.GetDevice(ctx, id) })
}

func (s *store) PutDevice(ctx context.Context, d secrets.Device, ifVersion int64) (secrets.Device, error) {
	return timed(s.m, "put_device", func() (secrets.Device, error) { return s.s.PutDevice(ctx, d, ifVersion) })
}

// bulkStore is the wrapper of a store that writes in bulk.
type bulkStore struct{ store }

// PutDevices passes a bulk write on.
func (s *bulkStore) PutDevices(ctx context.Context, puts []secrets.DevicePut) []secrets.DevicePutResult {
	start := time.Now()
	out := secrets.PutDevices(ctx, s.s, puts)
	s.m.observeStore("put_devices", start, nil)
	return out
}

func (s *store) DeleteDevice(ctx context.Context, id string) error {
	return timedErr(s.m, "delete_device", func() error { return s.s.DeleteDevice(ctx, id) })
}

func (s *store) ListDevices(ctx context.Context, opts secrets.ListOptions) (secrets.Page, error) {
	return timed(s.m, "list_devices", func() (secrets.Page, error) { return s.s.ListDevices(ctx, opts) })
}

func (s *store) GetGroup(ctx context.Context, id string) (secrets.Group, error) {
	return timed(s.m, "get_group", func() (secrets.Group, error) { return s.s.GetGroup(ctx, id) })
}

func (s *store) PutGroup(ctx context.Context, g secrets.Group, ifVersion int64) (secrets.Group, error) {
	return timed(s.m, "put_group", func() (secrets.Group, error) { return s.s.PutGroup(ctx, g, ifVersion) })
}

func (s *store) DeleteGroup(ctx context.Context, id string) error {
	return timedErr(s.m, "delete_group", func() error { return s.s.DeleteGroup(ctx, id) })
}

func (s *store) ListGroups(ctx context.Context, after string, limit int) (secrets.GroupPage, error) {
	return timed(s.m, "list_groups", func() (secrets.GroupPage, error) { return s.s.ListGroups(ctx, after, limit) })
}

func (s *store) PutToken(ctx context.Context, t secrets.Token) error {
	return timedErr(s.m, "put_token", func() error { return s.s.PutToken(ctx, t) })
}

func (s *store) TokenByHash(ctx context.Context, hash string) (secrets.Token, error) {
	return timed(s.m, "token_by_hash", func() (secrets.Token, error) { return s.s.TokenByHash(ctx, hash) })
}

func (s *store) GetToken(ctx context.Context, id string) (secrets.Token, error) {
	return timed(s.m, "get_token", func() (secrets.Token, error) { return s.s.GetToken(ctx, id) })
}

func (s *store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return timedErr(s.m, "revoke_token", func() error { return s.s.RevokeToken(ctx, id, at) })
}

func (s *store) ReplaceToken(ctx context.Context, id, by string, at time.Time) (secrets.Token, error) {
	return timed(s.m, "replace_token", func() (secrets.Token, error) { return s.s.ReplaceToken(ctx, id, by, at) })
}

func (s *store) ListTokens(ctx context.Context, opts secrets.TokenListOptions) (secrets.TokenPage, error) {
	return timed(s.m, "list_tokens", func() (secrets.TokenPage, error) { return s.s.ListTokens(ctx, opts) })
}

func (s *store) GetEnrolmentToken(ctx context.Context, id string) (secrets.EnrolmentToken, error) {
	return timed(s.m, "get_enrolment_token", func() (secrets.EnrolmentToken, error) { return s.s.GetEnrolmentToken(ctx, id) })
}

func (s *store) PutEnrolmentToken(ctx context.Context, t secrets.EnrolmentToken, ifVersion int64) (int64, error) {
	return timed(s.m, "put_enrolment_token", func() (int64, error) { return s.s.PutEnrolmentToken(ctx, t, ifVersion) })
}

func (s *store) ListEnrolmentTokens(ctx context.Context, group, after string, limit int) (secrets.EnrolmentTokenPage, error) {
	return timed(s.m, "list_enrolment_tokens", func() (secrets.EnrolmentTokenPage, error) {
		return s.s.ListEnrolmentTokens(ctx, group, after, limit)
	})
}

func (s *store) GetKey(ctx context.Context, name string) ([]byte, int64, error) {
	var version int64
	v, err := timed(s.m, "get_key", func() (v []byte, err error) {
		v, version, err = s.s.GetKey(ctx, name)
		return v, err
	})
	return v, version, err
}

func (s *store) PutKey(ctx context.Context, name string, value []byte, ifVersion int64) (int64, error) {
	return timed(s.m, "put_key", func() (int64, error) { return s.s.PutKey(ctx, name, value, ifVersion) })
}

func (s *store) Ping(ctx context.Context) error {
	return timedErr(s.m, "ping", func() error { return s.s.Ping(ctx) })
}

func (s *store) Close() error { return s.s.Close() }
