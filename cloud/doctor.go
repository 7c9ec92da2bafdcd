package cloud

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Triple is what a device sent in its MQTT CONNECT, as captured from a
// failing device.
type Triple struct {
	ClientID string `json:"clientId"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// Parts of a triple, as Finding.Part names them.
const (
	PartClientID = "clientId"
	PartUsername = "username"
	PartPassword = "password"
	// PartBroker is a finding about the broker's CONNACK code.
	PartBroker = "connack"
)

// Finding statuses.
const (
	StatusMatch   = "match"
	StatusDiffers = "differs"
	// StatusNote is information that neither proves nor rules out a fault
	// (what a CONNACK code means, a clock the cloud does not check).
	StatusNote = "note"
)

// Confidences of a finding.
const (
	// Certain: the captured value was reproduced exactly with the recipe
	// and the named variation (an HMAC does not match by chance).
	Certain = "certain"
	// Likely: read from the triple's form (a 13-digit expiry, an hour
	// eight hours ahead) rather than reproduced.
	Likely = "likely"
	// Possible: nothing tried explains the value.
	Possible = "possible"
)

// NoConnack is the connack argument of Diagnose when the broker's CONNACK
// code is not known.
const NoConnack = -1

// Finding is one conclusion about one part of a captured triple. Its text
// never contains the secret or the password the recipe expects.
type Finding struct {
	// Part is PartClientID, PartUsername, PartPassword or PartBroker.
	Part string `json:"part"`
	// Status is StatusMatch, StatusDiffers or StatusNote.
	Status string `json:"status"`
	// Cause says what differs and the likely reason, or what matched.
	Cause string `json:"cause"`
	// Confidence is Certain, Likely or Possible.
	Confidence string `json:"confidence"`
}

// Diagnosis is the doctor's report on a captured triple.
type Diagnosis struct {
	Cloud string `json:"cloud"`
	// Match is true when every part matches what the recipe produces and
	// nothing in it has expired.
	Match bool `json:"match"`
	// Findings lists the conclusions, clientId, username and password
	// first, then notes.
	Findings []Finding `json:"findings"`
	// At is the time the triple was judged at (the Request's Now).
	At time.Time `json:"at"`
}

// Diagnose compares a triple captured from a device with what the recipe
// of req's cloud produces for req's device (req.Cloud, req.Params,
// req.Secret) and names the part that differs and the likely cause: clock
// skew, milliseconds for seconds, a key not base64-decoded (or decoded),
// the wrong sign method, the wrong encoding, swapped fields, a stale
// timestamp, or a wrong secret. It reads the timestamp the device embedded
// in its triple and recomputes the recipe with it, then with each classic
// mistake (and pairs of them) until one reproduces the captured password.
// req.Now is the time the triple is judged at (when the CONNECT was
// refused); req.TTL is not used. connack is the broker's CONNACK return
// or reason code, or NoConnack.
//
// No text in the result contains the secret, the password the recipe
// expects or the captured password. The error is an *InvalidError when req
// is not a valid device or its cloud is not covered (DoctorClouds).
func (r *Registry) Diagnose(req Request, got Triple, connack int) (Diagnosis, error) {
	cl, ok := r.clouds[req.Cloud]
	if !ok {
		return Diagnosis{}, r.unknownCloud(req.Cloud)
	}
	dr, ok := r.backends[cl.Name].(Diagnoser)
	if !ok {
		return Diagnosis{}, Invalid("cloud", "the doctor does not diagnose %s triples (it covers %s)", cl.Name, strings.Join(r.DoctorClouds(), ", "))
	}
	p, err := cl.normalize(req.Params)
	if err != nil {
		return Diagnosis{}, err
	}
	key, err := cl.secretKey(req.Secret)
	if err != nil {
		return Diagnosis{}, err
	}
	if req.Now.IsZero() {
		return Diagnosis{}, Invalid("now", "the time to judge the triple at is required")
	}
	d := &Doctor{Cloud: cl, P: p, Secret: req.Secret, Key: key, Now: req.Now.UTC(), Got: got}
	dr.Diagnose(d)
	d.connack(connack)
	// clientId, username, password, then the broker's code; each part's
	// findings in the order they were made.
	order := map[string]int{PartClientID: 0, PartUsername: 1, PartPassword: 2, PartBroker: 3}
	sort.SliceStable(d.findings, func(i, j int) bool { return order[d.findings[i].Part] < order[d.findings[j].Part] })
	out := Diagnosis{Cloud: cl.Name, Match: true, Findings: d.findings, At: d.Now}
	for _, f := range d.findings {
		if f.Status == StatusDiffers {
			out.Match = false
		}
	}
	for i := range out.Findings {
		out.Findings[i].Cause = d.scrub(out.Findings[i].Cause)
	}
	return out, nil
}

// Doctor holds one diagnosis under way: what a Diagnoser reads, and the
// findings it adds.
type Doctor struct {
	Cloud    *Cloud
	P        Params
	Secret   string
	Key      []byte // the key as the recipe uses it
	Now      time.Time
	Got      Triple
	findings []Finding
	expected []string // values that must never appear in a finding
}

// Add records a finding, its cause formatted.
func (d *Doctor) Add(part, status, confidence, format string, args ...any) {
	d.findings = append(d.findings, Finding{Part: part, Status: status, Cause: fmt.Sprintf(format, args...), Confidence: confidence})
}

// scrub is the last guard: a cause that would contain the secret, an
// expected password or the captured password is replaced. The recipes'
// causes never quote them; this keeps it so if one ever did.
func (d *Doctor) scrub(s string) string {
	for _, v := range append([]string{d.Secret, d.Got.Password}, d.expected...) {
		if len(v) >= 6 && strings.Contains(s, v) {
			return "(withheld: the text would have shown a secret value)"
		}
	}
	return s
}

// Variation is one way of computing a step: the recipe's (the first of a
// Dim) or a mistake.
type Variation struct {
	Cause  string // empty for the recipe
	Benign bool   // a difference the cloud accepts
}

// Dim is one step of a recipe with its possible mistakes; Dim[0] is the
// recipe.
type Dim []Variation

// Search tries the recipe, then each single mistake, then each pair of
// mistakes in different steps, and returns the first selection for which
// compute gives want. compute returns "" for a selection that makes no
// sense; each computed value is remembered in d.expected.
func (d *Doctor) Search(dims []Dim, want string, compute func(sel []int) string) ([]int, bool) {
	sel := make([]int, len(dims))
	try := func() bool {
		v := compute(sel)
		if v == "" {
			return false
		}
		d.expected = append(d.expected, v)
		return v == want
	}
	if try() {
		return sel, true
	}
	for i := range dims {
		for a := 1; a < len(dims[i]); a++ {
			sel[i] = a
			if try() {
				return sel, true
			}
		}
		sel[i] = 0
	}
	for i := range dims {
		for j := i + 1; j < len(dims); j++ {
			for a := 1; a < len(dims[i]); a++ {
				for b := 1; b < len(dims[j]); b++ {
					sel[i], sel[j] = a, b
					if try() {
						return sel, true
					}
				}
			}
			sel[i], sel[j] = 0, 0
		}
	}
	return nil, false
}

// PasswordFinding reports the outcome of Search on the password.
func (d *Doctor) PasswordFinding(dims []Dim, sel []int, ok bool, context, unknownHint string) {
	if !ok {
		cause := "wrong secret or an unknown mistake: neither the recipe" + context + " nor any of its classic mistakes reproduces the password"
		if unknownHint != "" {
			cause += "; " + unknownHint
		}
		d.Add(PartPassword, StatusDiffers, Possible, "%s", cause)
		return
	}
	var bad, fine []string
	for i, s := range sel {
		if s == 0 {
			continue
		}
		if dims[i][s].Benign {
			fine = append(fine, dims[i][s].Cause)
		} else {
			bad = append(bad, dims[i][s].Cause)
		}
	}
	if len(bad) == 0 {
		cause := "the password matches the recipe" + context
		if len(fine) > 0 {
			cause += " (" + strings.Join(fine, "; ") + ")"
		}
		d.Add(PartPassword, StatusMatch, Certain, "%s", cause)
		return
	}
	cause := strings.Join(bad, "; and ") + ": the password matches the recipe" + context + " with that mistake, so the secret is right"
	if len(fine) > 0 {
		cause += " (" + strings.Join(fine, "; ") + ")"
	}
	d.Add(PartPassword, StatusDiffers, Certain, "%s", cause)
}

// CompareField reports a part that has no timestamp in it.
func (d *Doctor) CompareField(part, got, want string, mistakes map[string]string) {
	if got == want {
		d.Add(part, StatusMatch, Certain, "the %s matches the Recipe: %q", part, want)
		return
	}
	if cause, ok := mistakes[got]; ok {
		d.Add(part, StatusDiffers, Certain, "%s: the %s is %q, the recipe's %q", cause, part, Clip(got), want)
		return
	}
	d.Add(part, StatusDiffers, Likely, "the %s is %q, the recipe's is %q: the device is configured with other identifiers than this device's", part, Clip(got), want)
}

// connack explains the broker's CONNACK code.
func (d *Doctor) connack(code int) {
	var meaning string
	switch code {
	case NoConnack:
		return
	case 0:
		meaning = "0: connection accepted"
	case 1:
		meaning = "1 (MQTT 3.1.1): unacceptable protocol version"
	case 2:
		meaning = "2 (MQTT 3.1.1): identifier rejected: the broker refused the ClientId"
	case 3:
		meaning = "3 (MQTT 3.1.1): server unavailable"
	case 4:
		meaning = "4 (MQTT 3.1.1): bad user name or password: the broker refused the username or password"
	case 5:
		meaning = "5 (MQTT 3.1.1): not authorized: the broker refused the credentials (some clouds answer 5 for a bad signature or an expired timestamp too)"
	case 0x85:
		meaning = "133 (MQTT 5): client identifier not valid"
	case 0x86:
		meaning = "134 (MQTT 5): bad user name or password"
	case 0x87:
		meaning = "135 (MQTT 5): not authorized"
	case 0x8C:
		meaning = "140 (MQTT 5): bad authentication method"
	default:
		meaning = fmt.Sprintf("%d: not a CONNACK code the doctor knows", code)
	}
	for _, f := range d.findings {
		if f.Status == StatusDiffers {
			d.Add(PartBroker, StatusNote, Likely, "CONNACK %s; the differences above explain it", meaning)
			return
		}
	}
	if code == 0 {
		d.Add(PartBroker, StatusNote, Certain, "CONNACK %s, and the triple matches the recipe", meaning)
		return
	}
	d.Add(PartBroker, StatusNote, Possible, "CONNACK %s, yet the triple matches the recipe with this device's secret: the cloud holds another secret for the device (re-created or reset in the console?), the device is disabled, or the connection goes to another instance or region than the cloud's records", meaning)
}

// HashFor returns the hash of a sign method ("hmacsha1", "md5", …), SHA-256 by default.
func HashFor(name string) func() hash.Hash {
	switch name {
	case "hmacsha1", "sha1":
		return sha1.New
	case "hmacmd5", "md5":
		return md5.New
	}
	return sha256.New
}

// MAC is the HMAC of msg under key.
func MAC(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// decodedOrRaw returns the other reading of a secret: its base64-decoded
// bytes for a text-secret cloud (nil when it does not decode), its raw
// bytes for a base64-secret cloud.
func (d *Doctor) otherKey() []byte {
	if d.Cloud.SecretFormat == SecretBase64 {
		return []byte(d.Secret)
	}
	b, err := base64.StdEncoding.DecodeString(d.Secret)
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}

// KeyDim is the step of reading the secret as the key: the recipe's
// reading, or the other (base64-decoded or not).
func (d *Doctor) KeyDim() Dim {
	if d.Cloud.SecretFormat == SecretBase64 {
		return Dim{{}, {Cause: "the key was not base64-decoded: the secret's base64 text was used as the HMAC key instead of the bytes it decodes to"}}
	}
	return Dim{{}, {Cause: "the key was base64-decoded: " + d.Cloud.Name + " uses the secret's text as the HMAC key, as the console shows it"}}
}

// KeyFor returns the key of selection s of KeyDim, nil when it has none.
func (d *Doctor) KeyFor(s int) []byte {
	if s == 0 {
		return d.Key
	}
	return d.otherKey()
}

// Digits reports whether s is a non-empty run of decimal digits.
func Digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Human renders a duration to the second, without a sign.
func Human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	return d.Round(time.Second).String()
}

// CheckExpiry judges an expiry in Unix seconds read from part (name is how
// the cloud calls it), for the clouds that enforce one.
func (d *Doctor) CheckExpiry(part, name, raw string) {
	if !Digits(raw) {
		d.Add(part, StatusDiffers, Likely, "the %s %q is not a decimal Unix time in seconds", name, Clip(raw))
		return
	}
	if len(raw) >= 13 {
		d.Add(part, StatusDiffers, Likely, "the %s %s is in milliseconds where Unix seconds are expected (read as seconds it lies %s)", name, raw, yearOf(raw))
		return
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		d.Add(part, StatusDiffers, Likely, "the %s %s is out of range", name, raw)
		return
	}
	exp := time.Unix(n, 0).UTC()
	left := exp.Sub(d.Now)
	switch {
	case left <= 0:
		d.Add(part, StatusDiffers, Likely, "the %s %s (%s) had passed %s before %s: a stale triple that was not refreshed, or the device clock is behind by at least %s",
			name, raw, exp.Format(time.RFC3339), Human(left), d.Now.Format(time.RFC3339), Human(left))
	case left > d.Cloud.MaxTTL:
		d.Add(part, StatusDiffers, Likely, "the %s %s (%s) is %s ahead of %s, more than %s allows (%s): the device clock is ahead by at least %s, or the lifetime is too long",
			name, raw, exp.Format(time.RFC3339), Human(left), d.Now.Format(time.RFC3339), d.Cloud.Name, Human(d.Cloud.MaxTTL), Human(left-d.Cloud.MaxTTL))
	default:
		d.Add(part, StatusMatch, Likely, "the %s %s (%s) is %s ahead: not expired", name, raw, exp.Format(time.RFC3339), Human(left))
	}
}

// yearOf reads a 13-digit timestamp as seconds and says when that is.
func yearOf(raw string) string {
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n > 253402300799 {
		return "beyond the year 9999"
	}
	return "in the year " + strconv.Itoa(time.Unix(n, 0).UTC().Year())
}

// UnitDim offers the timestamp as written, converted to seconds (when it
// looks like milliseconds) or to milliseconds (when it looks like
// seconds): the value signed differs from the value sent.
func UnitDim(name, raw string) (Dim, []string) {
	vals := []string{raw}
	d := Dim{{}}
	if !Digits(raw) {
		return d, vals
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return d, vals
	}
	if len(raw) >= 13 {
		vals = append(vals, strconv.FormatInt(n/1000, 10))
		d = append(d, Variation{Cause: fmt.Sprintf("the %s %s is sent in milliseconds but was signed in seconds (%d)", name, raw, n/1000)})
	} else if n < 1<<40 {
		vals = append(vals, strconv.FormatInt(n*1000, 10))
		d = append(d, Variation{Cause: fmt.Sprintf("the %s %s is sent in seconds but was signed in milliseconds (%d)", name, raw, n*1000)})
	}
	return d, vals
}

// MethodDim offers each sign method of methods, the declared one first.
func MethodDim(declared string, methods []string, label func(string) string) (Dim, []string) {
	vals := []string{declared}
	d := Dim{{}}
	for _, m := range methods {
		if m == declared {
			continue
		}
		vals = append(vals, m)
		d = append(d, Variation{Cause: fmt.Sprintf("wrong sign method: the password is %s but %s is declared", label(m), label(declared))})
	}
	return d, vals
}

// HashName names the HMAC of an aliyun or tencent sign method; "" when
// unknown.
func HashName(method string) string {
	switch method {
	case "hmacsha256":
		return "HMAC-SHA256"
	case "hmacsha1":
		return "HMAC-SHA1"
	case "hmacmd5":
		return "HMAC-MD5"
	}
	return ""
}

// HexShape says what a hex password's length suggests about its hash.
func HexShape(pw, declared string) string {
	if _, err := hex.DecodeString(pw); err != nil {
		return "the password is not hex"
	}
	var alg string
	switch len(pw) {
	case 64:
		alg = "HMAC-SHA256"
	case 40:
		alg = "HMAC-SHA1"
	case 32:
		alg = "HMAC-MD5"
	default:
		return fmt.Sprintf("the password has %d hex digits, the length of no HMAC here", len(pw))
	}
	if want := HashName(declared); want != "" && want != alg {
		return fmt.Sprintf("its length (%d hex digits) is that of %s while %s is declared", len(pw), alg, want)
	}
	return fmt.Sprintf("its form (%d hex digits, %s) is right, so the secret is the likely cause", len(pw), alg)
}

// TokenFields splits a query-like token "k=v&k=v" keeping the values as
// sent (not URL-decoded).
func TokenFields(s string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Split(s, "&") {
		k, v, _ := strings.Cut(f, "=")
		if _, dup := out[k]; !dup {
			out[k] = v
		}
	}
	return out
}

// HexDim is how a hex MAC is written into a password: lower case (the
// recipe), upper case (upper says what that is to the cloud: UpperHex when
// it wants lower case), or base64 instead of hex.
func HexDim(upper Variation) Dim {
	return Dim{{}, upper, {Cause: "the HMAC is base64-encoded instead of hex"}}
}

// UpperHex is the upper-case variation of a cloud that wants lower case.
var UpperHex = Variation{Cause: "upper-case hex where the recipe writes lower case"}

// EncodeHex writes sum as selection s of a HexDim does.
func EncodeHex(s int, sum []byte) string {
	switch s {
	case 1:
		return strings.ToUpper(hex.EncodeToString(sum))
	case 2:
		return base64.StdEncoding.EncodeToString(sum)
	}
	return hex.EncodeToString(sum)
}

// SigDim is how a base64 signature is written into a token: URL-encoded
// (the recipe), not URL-encoded, base64url, or hex.
var SigDim = Dim{{},
	{Cause: "the signature's base64 is not URL-encoded in the password"},
	{Cause: "the signature is base64url instead of URL-encoded standard base64"},
	{Cause: "the signature is hex instead of base64"},
}

// EncodeSig writes sum as selection s of SigDim does.
func EncodeSig(s int, sum []byte) string {
	switch s {
	case 1:
		return base64.StdEncoding.EncodeToString(sum)
	case 2:
		return base64.RawURLEncoding.EncodeToString(sum)
	case 3:
		return hex.EncodeToString(sum)
	}
	return url.QueryEscape(base64.StdEncoding.EncodeToString(sum))
}
