// Package signing turns a device's identity and secret into the MQTT
// ClientId/Username/Password triple that an IoT cloud accepts, plus the broker
// address, the cloud's standard topics for the device and an honest expiry.
// It holds one recipe per cloud (docs/clouds.md): the HMAC and hash family
// (aliyun, tencent, huawei, azure, onenet, baidu, tuya) and the token family
// (jwt, aws), which signs JWTs with a key pair the caller supplies
// (TokenKey). Each recipe is a pure function of its inputs: the issue time
// and any randomness are passed in, never read from the clock. It imports
// only the standard library.
package signing

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultTTL is the lifetime used when a Request leaves TTL at zero.
const DefaultTTL = time.Hour

// Request is everything a recipe needs to derive credentials.
type Request struct {
	// Cloud names the recipe (see Clouds).
	Cloud string
	// DeviceID is copied to Credentials.DeviceID; when empty the cloud's own
	// device name is used.
	DeviceID string
	// Params are the cloud's params (see Clouds). Values may be typed
	// (string, bool, int, float64 from JSON) or their text forms ("8883", "true").
	Params map[string]any
	// Secret is the device secret (or key, or PSK) as the console shows it;
	// for aws the authorizer's token-signing private key (PEM); unused by jwt.
	Secret string
	// TokenKey signs the tokens of the token family (jwt, aws): the
	// deployment's key pair, kept in the store. Other clouds ignore it.
	TokenKey *TokenKey
	// Issuer is the iss claim of those tokens: the server's public URL.
	Issuer string
	// Now is the issue time. It must be set.
	Now time.Time
	// TTL is the requested lifetime; zero means DefaultTTL. It must be at
	// least one second and at most the cloud's limit.
	TTL time.Duration
	// Rand supplies randomness (Tencent's connId, a JWT's jti); nil means
	// crypto/rand.
	Rand io.Reader
}

// Credentials is what a device needs to log in to its cloud's MQTT broker.
// Its JSON form is the Credentials object of the API and of `credsign sign`.
type Credentials struct {
	DeviceID string `json:"deviceId"`
	Cloud    string `json:"cloud"`
	ClientID string `json:"clientId"`
	Username string `json:"username"`
	Password string `json:"password"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	TLS      bool   `json:"tls"`
	// ALPN is the TLS application protocol the broker requires ("mqtt" for
	// AWS IoT on port 443); empty when none is needed.
	ALPN string `json:"alpn,omitempty"`
	// Topics are the cloud's standard topics for this device.
	Topics Topics `json:"topics"`
	// IssuedAt is the issue time the triple was derived from.
	IssuedAt time.Time `json:"issuedAt"`
	// ExpiresAt is when the cloud stops accepting the triple; nil when
	// nothing in it expires.
	ExpiresAt *time.Time `json:"expiresAt"`
	// ExpiryEnforced tells whether the cloud checks ExpiresAt.
	ExpiryEnforced bool `json:"expiryEnforced"`
	// RefreshAfter is when an agent should fetch a new triple: about two
	// thirds of the way through the lifetime.
	RefreshAfter time.Time `json:"refreshAfter"`
}

// InvalidError reports bad input: which field is wrong and why. Its text
// never contains the secret.
type InvalidError struct {
	// Field is "cloud", "params.NAME", "secret", "ttl", "now", "tokenKey" or
	// "issuer".
	Field string
	// Reason says what is wrong, for a human.
	Reason string
}

// Error implements error.
func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// IsInvalid reports whether err is (or wraps) an *InvalidError.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// Sign derives credentials for req.
func Sign(req Request) (Credentials, error) {
	return sign(req, nil)
}

// Explain derives credentials for req like Sign and also returns each step
// of the recipe, with the secret redacted, for debugging a rejected CONNECT.
func Explain(req Request) (Credentials, []Step, error) {
	tr := &trace{}
	c, err := sign(req, tr)
	return c, tr.steps, err
}

func sign(req Request, tr *trace) (Credentials, error) {
	cl, in, err := prepare(req, tr)
	if err != nil {
		return Credentials{}, err
	}
	if tr.on() {
		tr.add("cloud", "%s (%s)", cl.Name, cl.Title)
	}
	c, err := cl.recipe(in)
	if err != nil {
		return Credentials{}, err
	}
	c.Cloud = cl.Name
	if req.DeviceID != "" {
		c.DeviceID = req.DeviceID
	}
	c.IssuedAt = in.now
	life := in.ttl
	if c.ExpiresAt != nil && c.ExpiresAt.Sub(in.now) < life {
		life = c.ExpiresAt.Sub(in.now)
	}
	c.RefreshAfter = in.now.Add(life * 2 / 3)
	return c, nil
}

// prepare validates req and returns its cloud and the recipe's input.
func prepare(req Request, tr *trace) (*Cloud, input, error) {
	cl, ok := registry[req.Cloud]
	if !ok {
		return nil, input{}, unknownCloud(req.Cloud)
	}
	p, err := cl.normalize(req.Params)
	if err != nil {
		return nil, input{}, err
	}
	key, err := cl.secretKey(req.Secret)
	if err != nil {
		return nil, input{}, err
	}
	var rsaKey *rsa.PrivateKey
	if cl.SecretFormat == SecretPEM {
		if rsaKey, err = parseRSASecret(key); err != nil {
			return nil, input{}, err
		}
	}
	var alg string
	if cl.Tokens {
		if alg, err = checkTokenKey(req.TokenKey); err != nil {
			return nil, input{}, err
		}
		if req.Issuer == "" {
			return nil, input{}, invalid("issuer", "%s tokens need an issuer (the server's public URL)", cl.Name)
		}
	}
	if req.Now.IsZero() {
		return nil, input{}, invalid("now", "the issue time is required")
	}
	now := req.Now.UTC()
	if y := now.Year(); y < 1970 || y > 9999 {
		return nil, input{}, invalid("now", "the issue time must be between 1970 and 9999, not in %d", y)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if err := cl.checkTTL(ttl, p); err != nil {
		return nil, input{}, err
	}
	rnd := req.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	return cl, input{params: p, secret: req.Secret, key: key, rsaKey: rsaKey, now: now, ttl: ttl, rand: rnd, trace: tr,
		deviceID: req.DeviceID, tokenKey: req.TokenKey, alg: alg, issuer: req.Issuer}, nil
}

// input is what a recipe receives once the request has been validated.
type input struct {
	params params
	secret string
	key    []byte          // the HMAC key: the secret's bytes, base64-decoded where the cloud says so
	rsaKey *rsa.PrivateKey // the secret parsed, for clouds whose secret is a PEM key
	now    time.Time       // UTC
	ttl    time.Duration
	rand   io.Reader
	trace  *trace

	deviceID string    // Request.DeviceID
	tokenKey *TokenKey // token family only
	alg      string    // tokenKey's JWS algorithm
	issuer   string
}

// expiry returns now+ttl truncated to whole Unix seconds, as the clouds that
// carry an expiry in seconds do.
func (in input) expiry() int64 {
	return in.now.Add(in.ttl).Unix()
}

// outBuf assembles a credential's strings (ClientID, Username, Password,
// Host and topics) in one allocation: each part is appended and marked, then
// all are cut from a single string. Signing is on the hot path of every
// issue, so the parts are addressed by index, not by pointer, and recipes
// append to o.b themselves: escape analysis is field-insensitive, and an
// append through a pointer to o would move the stack buffer to the heap.
type outBuf struct {
	b    []byte
	ends [maxParts]int
	n    int
}

// maxParts bounds the strings one outBuf assembles.
const maxParts = 16

// mark ends the current part.
func (o *outBuf) mark() {
	o.ends[o.n] = len(o.b)
	o.n++
}

// add appends parts, joined, as the next part. It takes and returns o by
// value, as append does: a method on *outBuf that appended would move the
// recipe's stack buffer to the heap (TestRecipeAllocations).
func (o outBuf) add(parts ...string) outBuf {
	o.b = appendJoin(o.b, parts...)
	o.mark()
	return o
}

// fill makes the one string, sets c's first four fields from parts 0-3
// and returns the string, for cut. (The string is not kept in o: escape
// analysis would then let the buffer escape with it.)
func (o *outBuf) fill(c *Credentials) string {
	s := string(o.b)
	c.ClientID, c.Username, c.Password, c.Host = o.cut(s, 0), o.cut(s, 1), o.cut(s, 2), o.cut(s, 3)
	return s
}

// fillTopics is fill, then sets each of topics to the next part from
// part 4 on, in order.
func (o *outBuf) fillTopics(c *Credentials, topics ...*string) {
	s := o.fill(c)
	for i, t := range topics {
		*t = o.cut(s, 4+i)
	}
}

// cut returns the i-th marked part of s, the string fill returned.
func (o *outBuf) cut(s string, i int) string {
	start := 0
	if i > 0 {
		start = o.ends[i-1]
	}
	return s[start:o.ends[i]]
}

// appendJoin appends each of parts to dst in turn. It keeps nothing, so
// the buffer it is given stays where the caller put it.
func appendJoin(dst []byte, parts ...string) []byte {
	for _, s := range parts {
		dst = append(dst, s...)
	}
	return dst
}

// appendHost appends host, the host param, when it is set, and else the
// cloud's default host joined from parts.
func appendHost(dst []byte, host string, parts ...string) []byte {
	if host != "" {
		return append(dst, host...)
	}
	return appendJoin(dst, parts...)
}

// appendQueryEscape appends url.QueryEscape(s) to dst without allocating.
func appendQueryEscape[T string | []byte](dst []byte, s T) []byte {
	const upperhex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlnum(c) || c == '-' || c == '_' || c == '.' || c == '~':
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', upperhex[c>>4], upperhex[c&15])
		}
	}
	return dst
}

// Validate reports whether req would sign, without a token key: for the
// token family (jwt, aws) a missing TokenKey or Issuer is filled with a
// throwaway key, so that a device can be checked when it is registered,
// before the server's key pair is at hand. Its error is an *InvalidError
// for bad input and never contains the secret.
func Validate(req Request) error {
	if cl, ok := registry[req.Cloud]; ok && cl.Tokens {
		if req.TokenKey == nil {
			k, err := validationKey()
			if err != nil {
				return err
			}
			req.TokenKey = k
		}
		if req.Issuer == "" {
			req.Issuer = "urn:credsign:validate"
		}
	}
	_, err := Sign(req)
	return err
}

var (
	valKeyOnce sync.Once
	valKey     *TokenKey
	valKeyErr  error
)

// validationKey is the throwaway key Validate signs with (Ed25519: cheap).
func validationKey() (*TokenKey, error) {
	valKeyOnce.Do(func() { valKey, valKeyErr = GenerateTokenKey(AlgEdDSA) })
	return valKey, valKeyErr
}
