// Package registration performs, on credsign's behalf, the device
// registration calls of the clouds whose devices enrol by group or product
// (docs/clouds.md, "Registration"): the HTTP client, its retries and
// errors, and the validation every kind shares. Each kind (a Kind: Azure
// DPS in cloud/azure, Aliyun and Tencent dynamic registration in
// cloud/aliyun and cloud/tencent) is given by its cloud's package. The
// group or product secret stays in the server: devices never see it.
//
// Errors wrap ErrRefused when the cloud said no (or answered with a
// redirect, which is never followed), ErrUnavailable when it could not be
// reached or answered with a transient failure, and ErrInvalid when the
// request itself is wrong (a host outside the allowed ones, an address that
// is not public). No error ever contains the group secret, a derived key,
// a SAS token or a signature. Where the calls may go is in guard.go.
//
// It imports only the standard library.
package registration

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credsign/credsign/internal/retry"
)

var (
	// ErrRefused is wrapped when the cloud refused the registration: a 4xx
	// answer, a bad signature, an unknown device, a failed or disabled
	// assignment.
	ErrRefused = errors.New("registration refused")
	// ErrUnavailable is wrapped when the cloud could not be reached or
	// answered with a transient failure (network error, timeout, 5xx, 429)
	// after the client's retries, or when the context ended first.
	ErrUnavailable = errors.New("registration service unavailable")
	// ErrInvalid is wrapped when the request is wrong before anything is
	// sent: unknown kind, bad params, a group secret of the wrong form.
	ErrInvalid = errors.New("invalid registration request")
)

// Request asks for one device's registration.
type Request struct {
	// Kind names the registration kind (Kind.Name).
	Kind string
	// Params are the kind's params (see Validate). "{deviceId}" in a value
	// stands for DeviceID (DeviceIDPlaceholder).
	Params map[string]string
	// GroupSecret is the enrollment group's primary key (azure-dps,
	// standard base64) or the product secret (aliyun-dynamic,
	// tencent-dynamic).
	GroupSecret string
	// DeviceID is the device's id in credsign; it is the registration id
	// (azure-dps) or device name (aliyun, tencent) unless Params name one.
	DeviceID string
}

// Result is what the cloud assigned.
type Result struct {
	// Params are the device's params for its signing recipe: azure
	// {"hubHost","deviceId"}, aliyun {"productKey","deviceName"}, tencent
	// {"productId","deviceName"}.
	Params map[string]any
	// Secret is the device secret the cloud issued (aliyun deviceSecret,
	// tencent psk); empty for azure-dps, whose device key the service
	// derives from the group key when it signs.
	Secret string
}

// Client performs registrations over HTTPS. Its zero value is usable but
// knows no kind; it must not be copied after first use.
//
// By default it calls only each kind's documented hosts (Kind.Hosts),
// connects only to public addresses and follows no redirect (see
// AddressReason, RedirectError).
type Client struct {
	// Kinds are the registration kinds it performs
	// (cloud.Registry.RegistrationKinds).
	Kinds Kinds

	// HTTP is the client whose transport (an *http.Transport, or nil for
	// http.DefaultTransport) and timeout the requests use; nil means
	// http.DefaultClient. Its transport is copied with a dialer that checks
	// every address dialled, and without proxy; its CheckRedirect is
	// replaced by one that refuses. Tests put the emulator's CA in it.
	HTTP *http.Client
	// AllowPrivate lets the requests reach addresses that are not public
	// (loopback, private, link-local, ...): an emulator, a private
	// endpoint. Off, such a host is refused before anything is sent.
	AllowPrivate bool
	// AllowHosts adds host names to every kind's Hosts: "name",
	// "*.domain" (names ending in .domain) or an IP address
	// (CheckHostPattern).
	AllowHosts []string
	// Now is the clock for SAS expiry and signature timestamps; nil means
	// time.Now.
	Now func() time.Time
	// Rand supplies nonces; nil means crypto/rand.
	Rand io.Reader
	// Attempts bounds the tries of each HTTP call that fails transiently
	// (network error, 5xx, 429); 0 means 3.
	Attempts int
	// Backoff is the first ceiling of the waits between such tries when
	// the cloud sends no Retry-After: each wait is random in [0, ceiling]
	// (full jitter, retry.Backoff), the ceiling doubling each time up to
	// MaxWait. 0 means 500ms.
	Backoff time.Duration
	// PollInterval is the wait between DPS operation polls when the answer
	// has no Retry-After; 0 means 2s (as Azure's device SDKs).
	PollInterval time.Duration
	// MaxWait caps any single wait, Retry-After included; 0 means 1 minute.
	MaxWait time.Duration
	// SASTTL is the lifetime of DPS SAS tokens; 0 means 1 hour.
	SASTTL time.Duration

	buildOnce sync.Once
	hc        *http.Client
	hcErr     error
}

// FieldError is one thing wrong with a kind or its params, for an API's 422.
type FieldError struct {
	// Field is "kind" or "params.NAME" (or "secret" from ValidateSecret).
	Field string
	// Reason says what is wrong, for a human.
	Reason string
}

// Error implements error.
func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// Kind is one registration flow a cloud offers: its params and the calls
// it makes.
type Kind struct {
	// Name is the kind's name in a group's registration ("azure-dps").
	Name string
	// Cloud names the cloud whose devices it registers (the cloud's
	// Registry fills it in).
	Cloud string
	// Required and Optional list the kind's params.
	Required, Optional []string
	// Checks holds the checks of the params that have their own, in place
	// of the common rule: each returns why the value is wrong, "" when it
	// is right, without repeating the value.
	Checks map[string]func(value string) string
	// CheckSecret returns why a group or product secret has the wrong
	// form, "" when it is fine; it never repeats the secret.
	CheckSecret func(secret string) string
	// Hosts are the host names the kind's calls may go to without
	// Client.AllowHosts: the cloud's documented registration endpoints. A
	// pattern "*.example.com" matches any name ending in ".example.com"
	// (guard.go).
	Hosts []string
	// Host returns the host (host or host:port) the kind's calls go to
	// for the given, validated params: params.host or the kind's default.
	Host func(params map[string]string) string
	// Register performs the registration of r, validated, with c.
	Register func(ctx context.Context, c *Client, r Request) (Result, error)
}

// Kinds are registration kinds by name.
type Kinds map[string]Kind

// Names returns the kinds' names, sorted.
func (ks Kinds) Names() []string {
	out := make([]string, 0, len(ks))
	for k := range ks {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var (
	regionRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	tokenRE  = regexp.MustCompile(`^[A-Za-z0-9._:@{}-]+$`)
)

// Validate checks a kind and its params (unsubstituted templates allowed):
// unknown kind, unknown params, missing required params and malformed
// values. It returns nil when all is well. Each kind's params are listed
// beside it in its cloud's package (docs/enrolment.md).
func (ks Kinds) Validate(kind string, params map[string]string) []FieldError {
	spec, ok := ks[kind]
	if !ok {
		return []FieldError{{Field: "kind", Reason: fmt.Sprintf("unknown registration kind %q (one of %v)", kind, ks.Names())}}
	}
	var out []FieldError
	known := map[string]bool{}
	for _, n := range spec.Required {
		known[n] = true
		if params[n] == "" {
			out = append(out, FieldError{Field: "params." + n, Reason: "required"})
		}
	}
	for _, n := range spec.Optional {
		known[n] = true
	}
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := params[n]
		switch {
		case !known[n]:
			out = append(out, FieldError{Field: "params." + n, Reason: fmt.Sprintf("unknown param for %s", kind)})
		case v == "":
			if !contains(spec.Required, n) {
				out = append(out, FieldError{Field: "params." + n, Reason: "empty"})
			}
		case n == "host":
			if err := checkHost(v); err != nil {
				out = append(out, FieldError{Field: "params.host", Reason: err.Error()})
			}
		case n == "regionId":
			if !regionRE.MatchString(v) {
				out = append(out, FieldError{Field: "params.regionId", Reason: "want a region id such as cn-shanghai"})
			}
		case spec.Checks[n] != nil:
			if why := spec.Checks[n](v); why != "" {
				out = append(out, FieldError{Field: "params." + n, Reason: why})
			}
		default:
			if len(v) > 128 || !tokenRE.MatchString(v) {
				out = append(out, FieldError{Field: "params." + n, Reason: "want 1 to 128 letters, digits or . _ : @ - (and {placeholders})"})
			}
		}
	}
	return out
}

// Check is Validate with c's policy on hosts: the host a kind's calls go
// to (params.host, or the kind's default) must be one of the kind's
// documented hosts or c.AllowHosts, and an IP address must be public unless
// c.AllowPrivate. A host name is checked again on each address it resolves
// to when the call is made.
func (c *Client) Check(kind string, params map[string]string) []FieldError {
	out := c.Kinds.Validate(kind, params)
	if len(out) > 0 {
		return out
	}
	if err := c.checkAllowed(kind, c.Kinds[kind].Host(params)); err != nil {
		out = append(out, FieldError{Field: "params.host", Reason: err.Error()})
	}
	return out
}

// ValidateSecret checks the form of a group or product secret without
// echoing it: non-empty, and what the kind's CheckSecret asks.
func (ks Kinds) ValidateSecret(kind, secret string) *FieldError {
	spec, ok := ks[kind]
	if !ok {
		return &FieldError{Field: "kind", Reason: fmt.Sprintf("unknown registration kind %q", kind)}
	}
	switch {
	case secret == "":
		return &FieldError{Field: "secret", Reason: "required"}
	case spec.CheckSecret != nil:
		if why := spec.CheckSecret(secret); why != "" {
			return &FieldError{Field: "secret", Reason: why}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkHost accepts host or host:port, nothing else.
func checkHost(h string) error {
	u, err := url.Parse("https://" + h)
	if err != nil || u.Host != h || u.User != nil || u.Hostname() == "" {
		return fmt.Errorf("want host or host:port, without scheme or path")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port")
		}
	}
	return nil
}

// DeviceIDPlaceholder in a param value stands for the request's DeviceID.
const DeviceIDPlaceholder = "{deviceId}"

// Register performs r's registration with its cloud and returns what the
// cloud assigned. It waits at most until ctx ends.
func (c *Client) Register(ctx context.Context, r Request) (Result, error) {
	if len(r.Params) > 0 {
		p := make(map[string]string, len(r.Params))
		for k, v := range r.Params {
			p[k] = strings.ReplaceAll(v, DeviceIDPlaceholder, r.DeviceID)
		}
		r.Params = p
	}
	if errs := c.Check(r.Kind, r.Params); len(errs) > 0 {
		return Result{}, fmt.Errorf("%w: %s", ErrInvalid, errs[0].Error())
	}
	if fe := c.Kinds.ValidateSecret(r.Kind, r.GroupSecret); fe != nil {
		return Result{}, fmt.Errorf("%w: %s", ErrInvalid, fe.Error())
	}
	return c.Kinds[r.Kind].Register(ctx, c, r)
}

// httpClient returns the client built from c.HTTP (build), once.
func (c *Client) httpClient() (*http.Client, error) {
	c.buildOnce.Do(func() { c.hc, c.hcErr = c.build() })
	return c.hc, c.hcErr
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func param(p map[string]string, name, def string) string {
	if v := p[name]; v != "" {
		return v
	}
	return def
}

// answer is an HTTP response read in full.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// maxBody bounds what is read of an answer.
const maxBody = 1 << 16

// send performs one HTTP call built by build (called again for each try, so
// that signatures and timestamps are fresh), retrying transient failures
// (network errors, 5xx, 429) up to c.Attempts tries with Retry-After or
// exponential backoff. It returns the first non-transient answer; what
// names the call in errors. A refused address or a redirect ends it at
// once.
func (c *Client) send(ctx context.Context, what string, build func() (*http.Request, error)) (answer, error) {
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	backoff := retry.Backoff{Initial: orDuration(c.Backoff, 500*time.Millisecond), Max: c.capWait(time.Duration(1<<63 - 1))}
	var last error
	for try := 1; ; try++ {
		req, err := build()
		if err != nil {
			return answer{}, fmt.Errorf("%s: %w", what, err)
		}
		a, wait, err := c.once(ctx, req.WithContext(ctx))
		if err == nil {
			return a, nil
		}
		last = fmt.Errorf("%s: %w", what, err)
		if ctx.Err() != nil || try >= attempts || !errors.Is(err, ErrUnavailable) {
			return answer{}, last
		}
		if wait <= 0 {
			wait = backoff.Delay(try - 1)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return answer{}, fmt.Errorf("%w (waiting to retry after: %v)", last, err)
		}
	}
}

// once performs one HTTP call. A transient failure comes back as an error
// wrapping ErrUnavailable, with the Retry-After to honour when the server
// sent one.
func (c *Client) once(ctx context.Context, req *http.Request) (answer, time.Duration, error) {
	hc, err := c.httpClient()
	if err != nil {
		return answer{}, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if perr := classify(err); perr != nil {
			return answer{}, 0, perr
		}
		if ctx.Err() != nil {
			return answer{}, 0, fmt.Errorf("%w: %w", ErrUnavailable, context.Cause(ctx))
		}
		return answer{}, 0, fmt.Errorf("%w: %s", ErrUnavailable, describeNetErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return answer{}, 0, fmt.Errorf("%w: %w", ErrRefused, redirectOf(resp))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, 0, fmt.Errorf("%w: reading the answer: %s", ErrUnavailable, describeNetErr(err))
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: body}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		wait, _ := retry.ParseAfter(resp.Header.Get("Retry-After"), c.now())
		return a, c.capWait(wait), fmt.Errorf("%w: HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	return a, 0, nil
}

// describeNetErr names a transport failure without the request URL's query.
func describeNetErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " " + redactURL(ue.URL) + ": " + ue.Err.Error()
	}
	return err.Error()
}

// redactURL keeps scheme, host and path.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(url)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

func (c *Client) capWait(d time.Duration) time.Duration {
	if m := orDuration(c.MaxWait, time.Minute); d > m {
		return m
	}
	return d
}

// sleep waits d or until ctx ends.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if err := retry.Sleep(ctx, d); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// safeRE matches what of a server's answer may go into an error: short
// codes and tracking ids, never anything shaped like base64 or
// percent-encoded text (a signature echoed back by a misbehaving server);
// hexRunRE finds what looks like a hex signature.
var (
	safeRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,48}$`)
	hexRunRE = regexp.MustCompile(`[0-9A-Fa-f]{20}`)
)

// Safe returns v's text when it may go into an error.
func Safe(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return ""
	}
	if !safeRE.MatchString(s) || hexRunRE.MatchString(s) {
		return "(withheld)"
	}
	return s
}

// OrText returns s, def when empty.
func OrText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// What a Kind's Register uses of the client.

// Answer is an HTTP response read in full.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Send performs one HTTP call built by build (called again for each try,
// so that signatures and timestamps are fresh), retrying transient
// failures with Retry-After or exponential backoff; what names the call in
// errors.
func (c *Client) Send(ctx context.Context, what string, build func() (*http.Request, error)) (Answer, error) {
	a, err := c.send(ctx, what, build)
	return Answer{Status: a.status, Header: a.header, Body: a.body}, err
}

// Clock returns the time by c.Now, else time.Now.
func (c *Client) Clock() time.Time { return c.now() }

// Random returns c.Rand, else crypto/rand.
func (c *Client) Random() io.Reader { return c.rand() }

// Sleep waits d or until ctx ends.
func (c *Client) Sleep(ctx context.Context, d time.Duration) error { return c.sleep(ctx, d) }

// CapWait caps a wait at c.MaxWait.
func (c *Client) CapWait(d time.Duration) time.Duration { return c.capWait(d) }

// NewRequest returns a request of a kind's call to u: its body, when not
// nil, of the given content type, asking for JSON, with credsign's
// User-Agent. Its error names u without its query.
func NewRequest(method, u, contentType string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %s", redactURL(u))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "credsign-registration")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

// OrDuration returns d when positive, else def.
func OrDuration(d, def time.Duration) time.Duration { return orDuration(d, def) }

// Param returns the named param, def when empty.
func Param(p map[string]string, name, def string) string { return param(p, name, def) }
