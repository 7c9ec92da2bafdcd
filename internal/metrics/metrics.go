// Package metrics holds the service's Prometheus collectors. No label ever
// carries a secret, a token or a device ID: routes are templates
// ("/v1/devices/{id}"), clouds come from the signing registry.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
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

// Metrics are the collectors of one server, registered on their own registry.
type Metrics struct {
	// Registry holds every collector below plus the Go and process collectors.
	Registry *prometheus.Registry

	issuances    *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	cache        *prometheus.CounterVec
}

// New creates and registers the collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		issuances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credsign_credentials_issued_total",
			Help: "Credential requests by cloud and outcome (issued, rejected, denied, not_found, error).",
		}, []string{"cloud", "outcome"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credsign_http_request_duration_seconds",
			Help:    "HTTP request latency by route template, method and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "code"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credsign_store_operation_duration_seconds",
			Help:    "Secret store operation latency by operation.",
			Buckets: prometheus.DefBuckets,
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credsign_store_errors_total",
			Help: "Secret store operations that failed, by operation and kind (not_found, conflict, invalid, unavailable, other).",
		}, []string{"op", "kind"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credsign_cache_lookups_total",
			Help: "Record cache lookups by kind (device, token) and result (hit, miss, stale: served from cache while the store is unavailable).",
		}, []string{"kind", "result"}),
	}
	m.Registry.MustRegister(m.issuances, m.httpDuration, m.storeLatency, m.storeErrors, m.cache,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Issued counts one credential request for cloud ("none" when the device
// was not read) with the given outcome.
func (m *Metrics) Issued(cloud, outcome string) {
	if cloud == "" {
		cloud = "none"
	}
	m.issuances.WithLabelValues(cloud, outcome).Inc()
}

// Cache counts one cache lookup of kind ("device", "token") with result
// ("hit", "miss", "stale").
func (m *Metrics) Cache(kind, result string) {
	m.cache.WithLabelValues(kind, result).Inc()
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
	m.httpDuration.WithLabelValues(route, method, strconv.Itoa(code)).Observe(d.Seconds())
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

// InstrumentStore wraps s so that every call is timed and its errors counted.
func (m *Metrics) InstrumentStore(s secrets.Store) secrets.Store {
	return &store{s: s, m: m}
}

type store struct {
	s secrets.Store
	m *Metrics
}

func (s *store) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	start := time.Now()
	d, err := s.s.GetDevice(ctx, id)
	s.m.observeStore("get_device", start, err)
	return d, err
}

func (s *store) PutDevice(ctx context.Context, d secrets.Device, ifVersion int64) (secrets.Device, error) {
	start := time.Now()
	d, err := s.s.PutDevice(ctx, d, ifVersion)
	s.m.observeStore("put_device", start, err)
	return d, err
}

func (s *store) DeleteDevice(ctx context.Context, id string) error {
	start := time.Now()
	err := s.s.DeleteDevice(ctx, id)
	s.m.observeStore("delete_device", start, err)
	return err
}

func (s *store) ListDevices(ctx context.Context, opts secrets.ListOptions) (secrets.Page, error) {
	start := time.Now()
	p, err := s.s.ListDevices(ctx, opts)
	s.m.observeStore("list_devices", start, err)
	return p, err
}

func (s *store) PutToken(ctx context.Context, t secrets.Token) error {
	start := time.Now()
	err := s.s.PutToken(ctx, t)
	s.m.observeStore("put_token", start, err)
	return err
}

func (s *store) TokenByHash(ctx context.Context, hash string) (secrets.Token, error) {
	start := time.Now()
	t, err := s.s.TokenByHash(ctx, hash)
	s.m.observeStore("token_by_hash", start, err)
	return t, err
}

func (s *store) GetToken(ctx context.Context, id string) (secrets.Token, error) {
	start := time.Now()
	t, err := s.s.GetToken(ctx, id)
	s.m.observeStore("get_token", start, err)
	return t, err
}

func (s *store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	start := time.Now()
	err := s.s.RevokeToken(ctx, id, at)
	s.m.observeStore("revoke_token", start, err)
	return err
}

func (s *store) GetKey(ctx context.Context, name string) ([]byte, int64, error) {
	start := time.Now()
	v, version, err := s.s.GetKey(ctx, name)
	s.m.observeStore("get_key", start, err)
	return v, version, err
}

func (s *store) PutKey(ctx context.Context, name string, value []byte, ifVersion int64) (int64, error) {
	start := time.Now()
	v, err := s.s.PutKey(ctx, name, value, ifVersion)
	s.m.observeStore("put_key", start, err)
	return v, err
}

func (s *store) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.s.Ping(ctx)
	s.m.observeStore("ping", start, err)
	return err
}

func (s *store) Close() error { return s.s.Close() }
