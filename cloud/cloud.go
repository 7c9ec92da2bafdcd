// Package cloud holds what every cloud shares: the request and the
// credentials (the MQTT ClientId/Username/Password triple that an IoT cloud
// accepts, plus the broker address, the cloud's standard topics for the
// device and an honest expiry), params and their validation, the errors,
// the doctor's search engine and the Registry that the server, the CLI and
// the tests ask for a cloud and its abilities. Each cloud is a package
// under cloud/ (docs/clouds.md) that gives a Backend: its description and
// recipe, and the optional abilities it has (Diagnoser, GroupKeyDeriver,
// Registerer, ConsoleLayout); cloud/clouds lists them. A recipe is a pure
// function of its inputs: the issue time and any randomness are passed in,
// never read from the clock. It imports only the standard library and its
// own subpackage cloud/registration.
package cloud

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
	// TTL is the requested lifetime; zero means DefaultTTL, or the cloud's
	// limit for the params when that is shorter (Baidu's 10 minutes). It
	// must be at least one second and at most the cloud's limit.
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

// Invalid returns an *InvalidError for field, its reason formatted.
func Invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// IsInvalid reports whether err is (or wraps) an *InvalidError.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// Sign derives credentials for req.
func (r *Registry) Sign(req Request) (Credentials, error) {
	return r.sign(req, nil)
}

// Explain derives credentials for req like Sign and also returns each step
// of the recipe, with the secret redacted, for debugging a rejected CONNECT.
func (r *Registry) Explain(req Request) (Credentials, []Step, error) {
	tr := &Trace{}
	c, err := r.sign(req, tr)
	return c, tr.steps, err
}

func (r *Registry) sign(req Request, tr *Trace) (Credentials, error) {
	cl, in, err := r.prepare(req, tr)
	if err != nil {
		return Credentials{}, err
	}
	if tr.On() {
		tr.Add("cloud", "%s (%s)", cl.Name, cl.Title)
	}
	c, err := cl.Recipe(in)
	if err != nil {
		return Credentials{}, err
	}
	c.Cloud = cl.Name
	if req.DeviceID != "" {
		c.DeviceID = req.DeviceID
	}
	c.IssuedAt = in.Now
	life := in.TTL
	if c.ExpiresAt != nil && c.ExpiresAt.Sub(in.Now) < life {
		life = c.ExpiresAt.Sub(in.Now)
	}
	c.RefreshAfter = in.Now.Add(life * 2 / 3)
	return c, nil
}

// Prepare validates req and returns its cloud and the recipe's input: Sign
// is Prepare, the cloud's Recipe and the fields every cloud shares. The
// benchmarks time a recipe alone with it.
func (r *Registry) Prepare(req Request) (*Cloud, Input, error) {
	return r.prepare(req, nil)
}

// prepare validates req and returns its cloud and the recipe's input.
func (r *Registry) prepare(req Request, tr *Trace) (*Cloud, Input, error) {
	cl, ok := r.clouds[req.Cloud]
	if !ok {
		return nil, Input{}, r.unknownCloud(req.Cloud)
	}
	p, err := cl.normalize(req.Params)
	if err != nil {
		return nil, Input{}, err
	}
	key, err := cl.secretKey(req.Secret)
	if err != nil {
		return nil, Input{}, err
	}
	var rsaKey *rsa.PrivateKey
	if cl.SecretFormat == SecretPEM {
		if rsaKey, err = parseRSASecret(key); err != nil {
			return nil, Input{}, err
		}
	}
	var alg string
	if cl.Tokens {
		if alg, err = checkTokenKey(req.TokenKey); err != nil {
			return nil, Input{}, err
		}
		if req.Issuer == "" {
			return nil, Input{}, Invalid("issuer", "%s tokens need an issuer (the server's public URL)", cl.Name)
		}
	}
	if req.Now.IsZero() {
		return nil, Input{}, Invalid("now", "the issue time is required")
	}
	now := req.Now.UTC()
	if y := now.Year(); y < 1970 || y > 9999 {
		return nil, Input{}, Invalid("now", "the issue time must be between 1970 and 9999, not in %d", y)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultTTL
		if cl.MaxTTLFor != nil {
			limit, _ := cl.MaxTTLFor(p)
			ttl = min(ttl, limit)
		}
	}
	if err := cl.checkTTL(ttl, p); err != nil {
		return nil, Input{}, err
	}
	rnd := req.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	return cl, Input{Params: p, Secret: req.Secret, Key: key, RSAKey: rsaKey, Now: now, TTL: ttl, Rand: rnd, Trace: tr,
		DeviceID: req.DeviceID, TokenKey: req.TokenKey, Alg: alg, Issuer: req.Issuer}, nil
}

// Input is what a recipe receives once the request has been validated.
type Input struct {
	Params Params
	Secret string
	Key    []byte          // the HMAC key: the secret's bytes, base64-decoded where the cloud says so
	RSAKey *rsa.PrivateKey // the secret parsed, for clouds whose secret is a PEM key
	Now    time.Time       // UTC
	TTL    time.Duration
	Rand   io.Reader
	Trace  *Trace

	DeviceID string    // Request.DeviceID
	TokenKey *TokenKey // token family only
	Alg      string    // tokenKey's JWS algorithm
	Issuer   string
}

// Expiry returns now+ttl truncated to whole Unix seconds, as the clouds that
// carry an expiry in seconds do.
func (in Input) Expiry() int64 {
	return in.Now.Add(in.TTL).Unix()
}

// OutBuf assembles a credential's strings (ClientID, Username, Password,
// Host and topics) in one allocation: each part is appended and marked, then
// all are cut from a single string. Signing is on the hot path of every
// issue, so the parts are addressed by index, not by pointer, and recipes
// append to o.B themselves: escape analysis is field-insensitive, and an
// append through a pointer to o would move the stack buffer to the heap.
type OutBuf struct {
	// B is the buffer the recipe appends the current part to.
	B    []byte
	ends [maxParts]int
	n    int
}

// maxParts bounds the strings one OutBuf assembles.
const maxParts = 16

// Mark ends the current part.
func (o *OutBuf) Mark() {
	o.ends[o.n] = len(o.B)
	o.n++
}

// Add appends parts, joined, as the next part. It takes and returns o by
// value, as append does: a method on *OutBuf that appended would move the
// recipe's stack buffer to the heap (TestRecipeAllocations).
func (o OutBuf) Add(parts ...string) OutBuf {
	o.B = AppendJoin(o.B, parts...)
	o.Mark()
	return o
}

// Fill makes the one string, sets c's first four fields from parts 0-3
// and returns the string, for Cut. (The string is not kept in o: escape
// analysis would then let the buffer escape with it.)
func (o *OutBuf) Fill(c *Credentials) string {
	s := string(o.B)
	c.ClientID, c.Username, c.Password, c.Host = o.Cut(s, 0), o.Cut(s, 1), o.Cut(s, 2), o.Cut(s, 3)
	return s
}

// FillTopics is Fill, then sets each of topics to the next part from
// part 4 on, in order.
func (o *OutBuf) FillTopics(c *Credentials, topics ...*string) {
	s := o.Fill(c)
	for i, t := range topics {
		*t = o.Cut(s, 4+i)
	}
}

// Cut returns the i-th marked part of s, the string Fill returned.
func (o *OutBuf) Cut(s string, i int) string {
	start := 0
	if i > 0 {
		start = o.ends[i-1]
	}
	return s[start:o.ends[i]]
}

// AppendJoin appends each of parts to dst in turn. It keeps nothing, so
// the buffer it is given stays where the caller put it.
func AppendJoin(dst []byte, parts ...string) []byte {
	for _, s := range parts {
		dst = append(dst, s...)
	}
	return dst
}

// AppendHost appends host, the host param, when it is set, and else the
// cloud's default host joined from parts.
func AppendHost(dst []byte, host string, parts ...string) []byte {
	if host != "" {
		return append(dst, host...)
	}
	return AppendJoin(dst, parts...)
}

// AppendQueryEscape appends url.QueryEscape(s) to dst without allocating.
func AppendQueryEscape[T string | []byte](dst []byte, s T) []byte {
	const upperhex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case IsAlnum(c) || c == '-' || c == '_' || c == '.' || c == '~':
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
func (r *Registry) Validate(req Request) error {
	if cl, ok := r.clouds[req.Cloud]; ok && cl.Tokens {
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
	_, err := r.Sign(req)
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
