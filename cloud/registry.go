package cloud

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Param types, as they appear in ParamSpec.Type and in the API's schemas.
const (
	TypeString  = "string"
	TypeInteger = "integer"
	TypeBoolean = "boolean"
	// TypeObject is a JSON object (its text form on the command line).
	TypeObject = "object"
)

// Secret formats, as they appear in Cloud.SecretFormat.
const (
	// SecretText means the secret is used as its raw UTF-8 bytes.
	SecretText = "text"
	// SecretBase64 means the secret is standard base64 and its decoded bytes are the key.
	SecretBase64 = "base64"
	// SecretPEM means the secret is a PEM-encoded RSA private key of at
	// least 2048 bits (PKCS #1 or PKCS #8).
	SecretPEM = "pem"
	// SecretNone means the cloud uses no per-device secret: the token is
	// signed with the server's TokenKey. A secret, if given, is not used.
	SecretNone = "none"
)

// LongestTTL is the longest lifetime any cloud here is asked to honour.
const LongestTTL = 365 * 24 * time.Hour

// Cloud describes one supported cloud: its params and limits.
type Cloud struct {
	// Name is the identifier used in requests ("aliyun").
	Name string `json:"name"`
	// Title is a human name ("Alibaba Cloud IoT Platform").
	Title string `json:"title"`
	// SecretFormat is SecretText, SecretBase64, SecretPEM or SecretNone.
	SecretFormat string `json:"secretFormat"`
	// Params lists every param the cloud accepts.
	Params []ParamSpec `json:"params"`
	// DefaultTTL is the lifetime used when none is asked for: the
	// package's DefaultTTL, or MaxTTL when that is shorter.
	DefaultTTL time.Duration `json:"-"`
	// MaxTTL is the longest lifetime that may be asked for with the
	// cloud's default params. Some clouds allow another depending on params
	// (Huawei allows one hour with checkTimestamp, its default, and a year
	// without): MaxTTLNote then says how.
	MaxTTL time.Duration `json:"-"`
	// MaxTTLNote says how params change MaxTTL; empty when they do not.
	MaxTTLNote string `json:"-"`

	// Tokens tells whether the cloud's password is a JWT that credsign
	// signs with the Request's TokenKey (the token family: jwt, aws).
	Tokens bool `json:"tokens"`

	// Recipe derives the credentials from a validated request.
	Recipe func(Input) (Credentials, error) `json:"-"`
	// SecretCheck, when set, checks the secret's text beyond its format;
	// its error never contains the secret.
	SecretCheck func(string) error `json:"-"`
	// MaxTTLFor, when set, narrows MaxTTL for the given params and says
	// why (the reason starts with ": ").
	MaxTTLFor func(Params) (time.Duration, string) `json:"-"`
}

// ParamSpec describes one param of a cloud.
type ParamSpec struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Required    bool   `json:"required"`
	Description string `json:"description"`
	// Default is the value used when the param is absent; nil when there is
	// none or it is derived from other params (see Description).
	Default any `json:"default,omitempty"`
	// Allowed lists the only values accepted; empty means any valid value.
	Allowed []any `json:"allowed,omitempty"`

	// Check validates a string value beyond its type (each key of an
	// object); its message must not repeat the value.
	Check func(string) error `json:"-"`
}

func (r *Registry) register(c *Cloud) {
	if len(c.Params) > maxParams {
		panic("signing: too many params for " + c.Name)
	}
	if _, dup := r.clouds[c.Name]; dup || c.Name == "" || c.Recipe == nil {
		panic("cloud: a cloud without a name or a recipe, or listed twice: " + c.Name)
	}
	c.DefaultTTL = DefaultTTL
	c.MaxTTL = LongestTTL
	if c.MaxTTLFor != nil {
		// What the cloud allows with its default params is its maximum;
		// the note says how other params change it.
		c.MaxTTL, c.MaxTTLNote = c.MaxTTLFor(Params{specs: c.Params})
		c.MaxTTLNote = strings.TrimPrefix(c.MaxTTLNote, ": ")
		c.DefaultTTL = min(c.DefaultTTL, c.MaxTTL)
	}
	r.clouds[c.Name] = c
}

// Clouds returns every supported cloud, sorted by name.
func (r *Registry) Clouds() []Cloud {
	out := make([]Cloud, 0, len(r.clouds))
	for _, c := range r.clouds {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupCloud returns the cloud with the given name.
func (r *Registry) LookupCloud(name string) (Cloud, bool) {
	c, ok := r.clouds[name]
	if !ok {
		return Cloud{}, false
	}
	return *c, true
}

func (r *Registry) cloudNames() string {
	return strings.Join(r.Names(), ", ")
}

func (r *Registry) unknownCloud(name string) error {
	if name == "" {
		return Invalid("cloud", "is required (one of %s)", r.cloudNames())
	}
	return Invalid("cloud", "unknown cloud %q (supported: %s)", Clip(name), r.cloudNames())
}

// NormalizeParams validates params for the named cloud and returns them with
// typed values (string, int, bool). Missing optional params are not filled in.
func (r *Registry) NormalizeParams(cloud string, raw map[string]any) (map[string]any, error) {
	c, ok := r.clouds[cloud]
	if !ok {
		return nil, r.unknownCloud(cloud)
	}
	p, err := c.normalize(raw)
	if err != nil {
		return nil, err
	}
	return c.typed(p), nil
}

// ValidateSecret checks that secret has the form the named cloud expects
// (non-empty; base64 for clouds whose keys are base64). Its error never
// contains the secret.
func (r *Registry) ValidateSecret(cloud, secret string) error {
	c, ok := r.clouds[cloud]
	if !ok {
		return r.unknownCloud(cloud)
	}
	return c.checkSecret(secret)
}

// Spec returns the named param's spec, nil when the cloud has none.
func (c *Cloud) Spec(name string) *ParamSpec {
	if i := c.index(name); i >= 0 {
		return &c.Params[i]
	}
	return nil
}

func (c *Cloud) index(name string) int {
	for i := range c.Params {
		if c.Params[i].Name == name {
			return i
		}
	}
	return -1
}

func (c *Cloud) paramNames() string {
	names := make([]string, len(c.Params))
	for i, s := range c.Params {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// normalize validates raw and returns its values indexed by spec, read
// through params' accessors, which convert text forms: the hot path copies
// and hashes as little as it can.
func (c *Cloud) normalize(raw map[string]any) (Params, error) {
	p := Params{specs: c.Params}
	var errs []error // every fault, so that a caller can fix them at once
	for name, v := range raw {
		i := c.index(name)
		if i < 0 {
			errs = append(errs, Invalid("params."+Clip(name), "unknown param for %s (accepted: %s)", c.Name, c.paramNames()))
			continue
		}
		if err := c.Params[i].validate(v); err != nil {
			errs = append(errs, err)
			continue
		}
		p.vals[i] = v
	}
	for i := range c.Params {
		if s := &c.Params[i]; s.Required && p.vals[i] == nil && raw[s.Name] == nil {
			errs = append(errs, Invalid(s.field(), "is required for %s", c.Name))
		}
	}
	if len(errs) == 0 {
		if err := checkPort(p); err != nil {
			return Params{}, err
		}
		return p, nil
	}
	// Map order is random: sort, so the first error is always the same.
	slices.SortFunc(errs, func(a, b error) int {
		return strings.Compare(a.(*InvalidError).Field, b.(*InvalidError).Field)
	})
	return Params{}, errors.Join(errs...)
}

// typed returns params with every value converted to its spec's type.
func (c *Cloud) typed(p Params) map[string]any {
	out := make(map[string]any, len(c.Params))
	for i, s := range c.Params {
		if p.vals[i] == nil {
			continue
		}
		switch s.Type {
		case TypeString:
			out[s.Name] = p.Str(s.Name, "")
		case TypeInteger:
			out[s.Name] = p.Int(s.Name, 0)
		case TypeBoolean:
			out[s.Name] = p.Bool(s.Name, false)
		case TypeObject:
			out[s.Name], _ = toObject(p.Get(s.Name))
		}
	}
	return out
}

// validate checks that a JSON or text value suits the spec.
func (s *ParamSpec) validate(v any) error {
	switch s.Type {
	case TypeString:
		str, ok := v.(string)
		if !ok {
			return Invalid(s.field(), "must be a string, not %s", typeName(v))
		}
		if str == "" {
			return Invalid(s.field(), "must not be empty")
		}
		if !utf8.ValidString(str) {
			return Invalid(s.field(), "must be valid UTF-8")
		}
		if containsFunc(str, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return Invalid(s.field(), "must not contain spaces or control characters")
		}
		if s.Check != nil {
			if err := s.Check(str); err != nil {
				return Invalid(s.field(), "%s", err.Error())
			}
		}
		for i, a := range s.Allowed {
			if a.(string) == str {
				break
			}
			if i == len(s.Allowed)-1 {
				return Invalid(s.field(), "must be one of %s, not %s", allowedList(s.Allowed), describe(str))
			}
		}
	case TypeInteger:
		n, ok := toInt(v)
		if !ok {
			return Invalid(s.field(), "must be an integer, not %s", describe(v))
		}
		for i, a := range s.Allowed {
			if a.(int) == n {
				break
			}
			if i == len(s.Allowed)-1 {
				return Invalid(s.field(), "must be one of %s, not %d", allowedList(s.Allowed), n)
			}
		}
	case TypeObject:
		if _, err := toObject(v); err != nil {
			return Invalid(s.field(), "%s", err.Error())
		}
		if s.Check != nil {
			if err := s.checkObj(v); err != nil {
				return err
			}
		}
	case TypeBoolean:
		if _, ok := toBool(v); !ok {
			if str, isStr := v.(string); isStr {
				return Invalid(s.field(), "must be true or false, not %q", Clip(str))
			}
			return Invalid(s.field(), "must be a boolean, not %s", typeName(v))
		}
	}
	return nil
}

// field names the param in errors.
func (s *ParamSpec) field() string { return "params." + s.Name }

func toBool(v any) (b, ok bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch x {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		if n < math.MinInt32 || n > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 32)
		return int(i), err == nil
	case string:
		i, err := strconv.ParseInt(n, 10, 32)
		return int(i), err == nil
	}
	return 0, false
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, int, int64, json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(Clip(x))
	case int, bool:
		return fmt.Sprint(x)
	}
	return typeName(v)
}

func allowedList(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = describe(v)
	}
	return strings.Join(parts, ", ")
}

// Clip shortens user-supplied text before it goes into an error message.
func Clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func (c *Cloud) checkSecret(secret string) error {
	key, err := c.secretKey(secret)
	if err == nil && c.SecretFormat == SecretPEM {
		_, err = parseRSASecret(key)
	}
	return err
}

// secretKey checks the secret and returns the key bytes it stands for.
func (c *Cloud) secretKey(secret string) ([]byte, error) {
	if c.SecretFormat == SecretNone {
		return nil, nil
	}
	if secret == "" {
		return nil, Invalid("secret", "is required")
	}
	if !utf8.ValidString(secret) {
		return nil, Invalid("secret", "must be valid UTF-8 text")
	}
	if c.SecretFormat == SecretPEM {
		// A PEM block has line breaks; parseRSASecret checks the rest.
		return []byte(secret), nil
	}
	if containsFunc(secret, unicode.IsControl) {
		return nil, Invalid("secret", "must not contain control characters (a stray newline or NUL?)")
	}
	if c.SecretCheck != nil {
		if err := c.SecretCheck(secret); err != nil {
			return nil, Invalid("secret", "%s", err.Error())
		}
	}
	if c.SecretFormat != SecretBase64 {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return nil, Invalid("secret", "must be standard base64 (as the %s console shows it); it did not decode", c.Name)
	}
	return key, nil
}

func (c *Cloud) checkTTL(ttl time.Duration, p Params) error {
	if ttl < time.Second {
		if ttl <= 0 {
			return Invalid("ttl", "must be positive")
		}
		return Invalid("ttl", "must be at least 1s")
	}
	limit, why := c.MaxTTL, ""
	if c.MaxTTLFor != nil {
		limit, why = c.MaxTTLFor(p)
	}
	if ttl > limit {
		return Invalid("ttl", "%d seconds is longer than %s allows (at most %d)%s", int64(ttl/time.Second), c.Name, int64(limit/time.Second), why)
	}
	return nil
}

// maxParams bounds the number of params a cloud may declare.
const maxParams = 12

// Params are validated params, indexed like their cloud's specs and read
// through accessors that convert the text forms of integers and booleans.
type Params struct {
	specs []ParamSpec
	vals  [maxParams]any // nil when absent
}

// Get returns the named param's value as given; nil when absent.
func (p *Params) Get(name string) any {
	for i := range p.specs {
		if p.specs[i].Name == name {
			return p.vals[i]
		}
	}
	return nil
}

// Str returns the named string param, def when absent.
func (p *Params) Str(name, def string) string {
	if v, ok := p.Get(name).(string); ok {
		return v
	}
	return def
}

// Int returns the named integer param, def when absent.
func (p *Params) Int(name string, def int) int {
	if v, ok := toInt(p.Get(name)); ok {
		return v
	}
	return def
}

// Obj returns the named object param, nil when absent.
func (p *Params) Obj(name string) map[string]any {
	m, _ := toObject(p.Get(name))
	return m
}

// Bool returns the named boolean param, def when absent.
func (p *Params) Bool(name string, def bool) bool {
	if v, ok := toBool(p.Get(name)); ok {
		return v
	}
	return def
}

// Shared param specs and checks.

// HostParam is the optional host param, which overrides the broker host.
func HostParam(desc string) ParamSpec {
	return ParamSpec{Name: "host", Type: TypeString, Description: desc, Check: CheckHost}
}

// PortParam is the optional port param, which overrides the broker port.
func PortParam(desc string) ParamSpec {
	return ParamSpec{Name: "port", Type: TypeInteger, Description: desc}
}

// CheckHost accepts a bare host name or address.
func CheckHost(s string) error {
	if len(s) > 253 {
		return fmt.Errorf("must be a host name of at most 253 characters")
	}
	if strings.ContainsAny(s, "/?#@") {
		return fmt.Errorf("must be a bare host name or address, without scheme, path or port")
	}
	return nil
}

func checkPort(p Params) error {
	if port, ok := toInt(p.Get("port")); ok && (port < 1 || port > 65535) {
		return Invalid("params.port", "must be between 1 and 65535, not %d", port)
	}
	return nil
}

// Forbid returns a check that rejects any of the given characters.
func Forbid(chars string, why string) func(string) error {
	return func(s string) error {
		if i := strings.IndexAny(s, chars); i >= 0 {
			return fmt.Errorf("must not contain %q (%s)", s[i], why)
		}
		return nil
	}
}

// containsFunc reports whether s, valid UTF-8, has a rune for which bad is
// true, treating printable ASCII, the common case, without calling it.
func containsFunc(s string, bad func(rune) bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return strings.ContainsFunc(s[i:], bad)
		}
	}
	return false
}

// maxObject bounds the JSON text of an object param.
const maxObject = 4096

// toObject returns a JSON object param: a decoded object as the API gives
// it, or its JSON text as the command line gives it.
func toObject(v any) (map[string]any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("must be a JSON object: %v", err)
		}
		if len(b) > maxObject {
			return nil, fmt.Errorf("must be at most %d bytes of JSON, not %d", maxObject, len(b))
		}
		return x, nil
	case string:
		if len(x) > maxObject {
			return nil, fmt.Errorf("must be at most %d bytes of JSON, not %d", maxObject, len(x))
		}
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(x))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
			return nil, fmt.Errorf("must be a JSON object such as {\"acl\":[]}")
		}
		return m, nil
	}
	return nil, fmt.Errorf("must be a JSON object, not %s", typeName(v))
}

// checkObj runs the spec's check on each key of an object param.
func (s *ParamSpec) checkObj(v any) error {
	m, _ := toObject(v)
	for k := range m {
		if err := s.Check(k); err != nil {
			return Invalid(s.field(), "%s", err.Error())
		}
	}
	return nil
}
