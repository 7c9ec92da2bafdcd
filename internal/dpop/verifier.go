package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Nonce timing: a nonce names the minute it was made in and is accepted
// for NonceSteps minutes after it (between four and five minutes).
const (
	nonceStep  = time.Minute
	NonceSteps = 4
	// NonceLifetime is the longest a nonce is accepted.
	NonceLifetime = (NonceSteps + 1) * nonceStep
)

// replayWindow is how long a jti is remembered at least: longer than a
// nonce is valid and than the iat window, so that no proof is accepted
// twice on one replica while it could be accepted at all.
const replayWindow = NonceLifetime + MaxSkew

// DefaultMaxJTIs bounds the jti cache (per generation; two generations are
// kept): about 40 bytes each, so 256 MiB of proofs cannot be remembered,
// but 20 MB can.
const DefaultMaxJTIs = 250_000

// ErrBusy is returned when the jti cache is full: the proof is not
// accepted (that would allow its replay) and the caller should retry
// later. It takes more than DefaultMaxJTIs valid proofs in five minutes
// on one replica.
var ErrBusy = errors.New("too many DPoP proofs on this replica in the replay window; retry later")

// Verifier checks proofs. It is safe for concurrent use.
type Verifier struct {
	nonceKey []byte
	now      func() time.Time
	// base, when set, is the public URL's scheme://host[:port] and path
	// prefix, which replaces the request's.
	base string

	// headers caches the headers go-jose parsed and verified, by their
	// base64url text (maxHeaders at most; emptied when full).
	hmu     sync.RWMutex
	headers map[string]*header

	mu      sync.Mutex
	cur     map[[16]byte]struct{}
	prev    map[[16]byte]struct{}
	rotated time.Time
	maxJTIs int
}

// Config configures a Verifier.
type Config struct {
	// NonceKey is the HMAC key of server nonces (32 bytes), shared by the
	// replicas so that a nonce from one is good at another.
	NonceKey []byte
	// PublicURL, when set, is the URL devices address this server by
	// (behind a proxy): its scheme, host, port and path prefix replace the
	// request's in the expected htu.
	PublicURL string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxJTIs bounds the replay cache; zero means DefaultMaxJTIs.
	MaxJTIs int
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	if len(cfg.NonceKey) < 32 {
		return nil, errors.New("dpop: the nonce key must be at least 32 bytes")
	}
	v := &Verifier{nonceKey: cfg.NonceKey, now: cfg.Now, maxJTIs: cfg.MaxJTIs,
		cur: map[[16]byte]struct{}{}, prev: map[[16]byte]struct{}{}, headers: map[string]*header{}}
	if v.now == nil {
		v.now = time.Now
	}
	if v.maxJTIs <= 0 {
		v.maxJTIs = DefaultMaxJTIs
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, errors.New("dpop: the public URL must be http(s)://host[:port][/prefix]")
		}
		v.base = origin(u.Scheme, u.Host) + strings.TrimSuffix(u.EscapedPath(), "/")
	}
	v.rotated = v.now()
	return v, nil
}

// ExpectedURL returns the htu a proof for a request must carry: scheme
// and host as the request came (tls: https) or, with a public URL, the
// public URL's, then the request's path.
func (v *Verifier) ExpectedURL(tls bool, host, escapedPath string) string {
	if v.base != "" {
		return v.base + escapedPath
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return origin(scheme, host) + escapedPath
}

// origin returns scheme://host[:port] lowercased, the default port dropped.
func origin(scheme, host string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host
}

// normalURL returns htu as compared: without query and fragment, scheme
// and host lowercased, default port dropped (RFC 9449 section 4.3).
func normalURL(htu string) (string, bool) {
	u, err := url.Parse(htu)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	return origin(u.Scheme, u.Host) + u.EscapedPath(), true
}

// Verify checks proof for a request with method to the URL wantURL (from
// ExpectedURL): form, signature, htm, htu, and either iat within the
// window or a valid server nonce (required when requireNonce). It does not
// consult the jti cache: call Accept once everything else about the
// request is settled.
func (v *Verifier) Verify(proof, method, wantURL string, requireNonce bool) (Proof, error) {
	h, c, err := v.parse(proof)
	if err != nil {
		return Proof{}, err
	}
	if *c.HTM != method {
		return Proof{}, refuse(WrongMethod, "the DPoP proof's htm is not this request's method")
	}
	got, ok := normalURL(*c.HTU)
	if !ok {
		return Proof{}, refuse(Malformed, "the DPoP proof's htu is not an http(s) URL")
	}
	if want, _ := normalURL(wantURL); got != want {
		return Proof{}, refuse(WrongURL, "the DPoP proof's htu is not this request's URL")
	}
	iat, _ := c.iat()
	p := Proof{Key: h.key, KeyID: h.kid, JTI: *c.JTI, IssuedAt: iat}
	now := v.now()
	if c.Nonce != nil {
		if !v.nonceValid(*c.Nonce, now) {
			return Proof{}, refuse(BadNonce, "the DPoP proof's nonce is not a current server nonce; use the DPoP-Nonce of the last response")
		}
		p.NonceOK = true
		return p, nil
	}
	if requireNonce {
		return Proof{}, refuse(UseNonce, "this server requires a nonce in DPoP proofs; use the DPoP-Nonce header")
	}
	switch t := time.Unix(iat, 0); {
	case t.Before(now.Add(-MaxAge)):
		return Proof{}, refuse(Stale, "the DPoP proof's iat is more than 60s old (check the device's clock, or send the server nonce)")
	case t.After(now.Add(MaxSkew)):
		return Proof{}, refuse(Future, "the DPoP proof's iat is in the future (check the device's clock, or send the server nonce)")
	}
	return p, nil
}

// Accept records p's jti for its key, or refuses it as replayed when this
// replica has seen it within the replay window. ErrBusy when the cache is
// full.
func (v *Verifier) Accept(p Proof) error {
	h := sha256.New()
	h.Write([]byte(p.KeyID))
	h.Write([]byte{0})
	h.Write([]byte(p.JTI))
	var id [16]byte
	copy(id[:], h.Sum(nil))
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.rotated) >= replayWindow {
		// Entries of prev are older than the window now: drop them, and
		// drop cur too when it is two windows old.
		v.prev, v.cur = v.cur, make(map[[16]byte]struct{}, len(v.cur))
		if now.Sub(v.rotated) >= 2*replayWindow {
			clear(v.prev)
		}
		v.rotated = now
	}
	if _, seen := v.cur[id]; seen {
		return refuse(Replayed, "this DPoP proof (its jti) was used before; sign a fresh one for every request")
	}
	if _, seen := v.prev[id]; seen {
		return refuse(Replayed, "this DPoP proof (its jti) was used before; sign a fresh one for every request")
	}
	if len(v.cur) >= v.maxJTIs {
		return ErrBusy
	}
	v.cur[id] = struct{}{}
	return nil
}

// maxHeaders bounds the header cache: a header is about 300 bytes and its
// parsed key, so at most a few MB.
const maxHeaders = 10_000

// header returns the cached header whose base64url text is text, or nil.
func (v *Verifier) header(text string) *header {
	v.hmu.RLock()
	defer v.hmu.RUnlock()
	return v.headers[text]
}

// rememberHeader caches a header go-jose parsed and verified.
func (v *Verifier) rememberHeader(text string, h *header) {
	v.hmu.Lock()
	defer v.hmu.Unlock()
	if len(v.headers) >= maxHeaders {
		clear(v.headers)
	}
	v.headers[text] = h
}

// Nonce returns a fresh server nonce for the DPoP-Nonce header.
func (v *Verifier) Nonce() string {
	return v.nonceAt(uint64(v.now().Unix() / int64(nonceStep/time.Second)))
}

func (v *Verifier) nonceAt(step uint64) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], step)
	m := hmac.New(sha256.New, v.nonceKey)
	m.Write([]byte("credsign dpop nonce\x00"))
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// nonceValid reports whether n is a nonce of this server made in the
// last NonceSteps steps.
func (v *Verifier) nonceValid(n string, now time.Time) bool {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != 24 {
		return false
	}
	step := binary.BigEndian.Uint64(b[:8])
	cur := uint64(now.Unix() / int64(nonceStep/time.Second))
	if step > cur || cur-step > NonceSteps {
		return false
	}
	return hmac.Equal([]byte(n), []byte(v.nonceAt(step)))
}
