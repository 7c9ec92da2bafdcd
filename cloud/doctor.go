package signing

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

// DoctorClouds lists the clouds Diagnose covers. The others (baidu, tuya
// and the token family jwt, aws) are refused with an *InvalidError.
var DoctorClouds = []string{"aliyun", "azure", "huawei", "onenet", "tencent"}

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
func Diagnose(req Request, got Triple, connack int) (Diagnosis, error) {
	cl, ok := registry[req.Cloud]
	if !ok {
		return Diagnosis{}, unknownCloud(req.Cloud)
	}
	dr, ok := doctors[cl.Name]
	if !ok {
		return Diagnosis{}, invalid("cloud", "the doctor does not diagnose %s triples (it covers %s)", cl.Name, strings.Join(DoctorClouds, ", "))
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
		return Diagnosis{}, invalid("now", "the time to judge the triple at is required")
	}
	d := &doctor{cloud: cl, p: p, secret: req.Secret, key: key, now: req.Now.UTC(), got: got}
	dr(d)
	d.connack(connack)
	// clientId, username, password, then the broker's code; each part's
	// findings in the order they were made.
	order := map[string]int{PartClientID: 0, PartUsername: 1, PartPassword: 2, PartBroker: 3}
	sort.SliceStable(d.findings, func(i, j int) bool { return order[d.findings[i].Part] < order[d.findings[j].Part] })
	out := Diagnosis{Cloud: cl.Name, Match: true, Findings: d.findings, At: d.now}
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

var doctors = map[string]func(*doctor){
	"aliyun":  doctorAliyun,
	"tencent": doctorTencent,
	"huawei":  doctorHuawei,
	"azure":   doctorAzure,
	"onenet":  doctorOneNET,
}

// doctor holds one diagnosis under way.
type doctor struct {
	cloud    *Cloud
	p        params
	secret   string
	key      []byte // the key as the recipe uses it
	now      time.Time
	got      Triple
	findings []Finding
	expected []string // values that must never appear in a finding
}

func (d *doctor) add(part, status, confidence, format string, args ...any) {
	d.findings = append(d.findings, Finding{Part: part, Status: status, Cause: fmt.Sprintf(format, args...), Confidence: confidence})
}

// scrub is the last guard: a cause that would contain the secret, an
// expected password or the captured password is replaced. The recipes'
// causes never quote them; this keeps it so if one ever did.
func (d *doctor) scrub(s string) string {
	for _, v := range append([]string{d.secret, d.got.Password}, d.expected...) {
		if len(v) >= 6 && strings.Contains(s, v) {
			return "(withheld: the text would have shown a secret value)"
		}
	}
	return s
}

// variation is one way of computing a step: the recipe's (the first of a
// dim) or a mistake.
type variation struct {
	cause  string // empty for the recipe
	benign bool   // a difference the cloud accepts
}

// dim is one step of a recipe with its possible mistakes; dim[0] is the
// recipe.
type dim []variation

// search tries the recipe, then each single mistake, then each pair of
// mistakes in different steps, and returns the first selection for which
// compute gives want. compute returns "" for a selection that makes no
// sense; each computed value is remembered in d.expected.
func (d *doctor) search(dims []dim, want string, compute func(sel []int) string) ([]int, bool) {
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

// passwordFinding reports the outcome of search on the password.
func (d *doctor) passwordFinding(dims []dim, sel []int, ok bool, context, unknownHint string) {
	if !ok {
		cause := "wrong secret or an unknown mistake: neither the recipe" + context + " nor any of its classic mistakes reproduces the password"
		if unknownHint != "" {
			cause += "; " + unknownHint
		}
		d.add(PartPassword, StatusDiffers, Possible, "%s", cause)
		return
	}
	var bad, fine []string
	for i, s := range sel {
		if s == 0 {
			continue
		}
		if dims[i][s].benign {
			fine = append(fine, dims[i][s].cause)
		} else {
			bad = append(bad, dims[i][s].cause)
		}
	}
	if len(bad) == 0 {
		cause := "the password matches the recipe" + context
		if len(fine) > 0 {
			cause += " (" + strings.Join(fine, "; ") + ")"
		}
		d.add(PartPassword, StatusMatch, Certain, "%s", cause)
		return
	}
	cause := strings.Join(bad, "; and ") + ": the password matches the recipe" + context + " with that mistake, so the secret is right"
	if len(fine) > 0 {
		cause += " (" + strings.Join(fine, "; ") + ")"
	}
	d.add(PartPassword, StatusDiffers, Certain, "%s", cause)
}

// compareField reports a part that has no timestamp in it.
func (d *doctor) compareField(part, got, want string, mistakes map[string]string) {
	if got == want {
		d.add(part, StatusMatch, Certain, "the %s matches the recipe: %q", part, want)
		return
	}
	if cause, ok := mistakes[got]; ok {
		d.add(part, StatusDiffers, Certain, "%s: the %s is %q, the recipe's %q", cause, part, clip(got), want)
		return
	}
	d.add(part, StatusDiffers, Likely, "the %s is %q, the recipe's is %q: the device is configured with other identifiers than this device's", part, clip(got), want)
}

// connack explains the broker's CONNACK code.
func (d *doctor) connack(code int) {
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
			d.add(PartBroker, StatusNote, Likely, "CONNACK %s; the differences above explain it", meaning)
			return
		}
	}
	if code == 0 {
		d.add(PartBroker, StatusNote, Certain, "CONNACK %s, and the triple matches the recipe", meaning)
		return
	}
	d.add(PartBroker, StatusNote, Possible, "CONNACK %s, yet the triple matches the recipe with this device's secret: the cloud holds another secret for the device (re-created or reset in the console?), the device is disabled, or the connection goes to another instance or region than the cloud's records", meaning)
}

// hash functions by sign method.
func hashFor(name string) func() hash.Hash {
	switch name {
	case "hmacsha1", "sha1":
		return sha1.New
	case "hmacmd5", "md5":
		return md5.New
	}
	return sha256.New
}

func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// decodedOrRaw returns the other reading of a secret: its base64-decoded
// bytes for a text-secret cloud (nil when it does not decode), its raw
// bytes for a base64-secret cloud.
func (d *doctor) otherKey() []byte {
	if d.cloud.SecretFormat == SecretBase64 {
		return []byte(d.secret)
	}
	b, err := base64.StdEncoding.DecodeString(d.secret)
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}

func (d *doctor) keyDim() dim {
	if d.cloud.SecretFormat == SecretBase64 {
		return dim{{}, {cause: "the key was not base64-decoded: the secret's base64 text was used as the HMAC key instead of the bytes it decodes to"}}
	}
	return dim{{}, {cause: "the key was base64-decoded: " + d.cloud.Name + " uses the secret's text as the HMAC key, as the console shows it"}}
}

// keyFor returns the key of selection s of keyDim, nil when it has none.
func (d *doctor) keyFor(s int) []byte {
	if s == 0 {
		return d.key
	}
	return d.otherKey()
}

// digits reports whether s is a non-empty run of decimal digits.
func digits(s string) bool {
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

// human renders a duration to the second, without a sign.
func human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	return d.Round(time.Second).String()
}

// checkExpiry judges an expiry in Unix seconds read from part (name is how
// the cloud calls it), for the clouds that enforce one.
func (d *doctor) checkExpiry(part, name, raw string) {
	if !digits(raw) {
		d.add(part, StatusDiffers, Likely, "the %s %q is not a decimal Unix time in seconds", name, clip(raw))
		return
	}
	if len(raw) >= 13 {
		d.add(part, StatusDiffers, Likely, "the %s %s is in milliseconds where Unix seconds are expected (read as seconds it lies %s)", name, raw, yearOf(raw))
		return
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		d.add(part, StatusDiffers, Likely, "the %s %s is out of range", name, raw)
		return
	}
	exp := time.Unix(n, 0).UTC()
	left := exp.Sub(d.now)
	switch {
	case left <= 0:
		d.add(part, StatusDiffers, Likely, "the %s %s (%s) had passed %s before %s: a stale triple that was not refreshed, or the device clock is behind by at least %s",
			name, raw, exp.Format(time.RFC3339), human(left), d.now.Format(time.RFC3339), human(left))
	case left > d.cloud.MaxTTL:
		d.add(part, StatusDiffers, Likely, "the %s %s (%s) is %s ahead of %s, more than %s allows (%s): the device clock is ahead by at least %s, or the lifetime is too long",
			name, raw, exp.Format(time.RFC3339), human(left), d.now.Format(time.RFC3339), d.cloud.Name, human(d.cloud.MaxTTL), human(left-d.cloud.MaxTTL))
	default:
		d.add(part, StatusMatch, Likely, "the %s %s (%s) is %s ahead: not expired", name, raw, exp.Format(time.RFC3339), human(left))
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

// unitDim offers the timestamp as written, converted to seconds (when it
// looks like milliseconds) or to milliseconds (when it looks like
// seconds): the value signed differs from the value sent.
func unitDim(name, raw string) (dim, []string) {
	vals := []string{raw}
	d := dim{{}}
	if !digits(raw) {
		return d, vals
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return d, vals
	}
	if len(raw) >= 13 {
		vals = append(vals, strconv.FormatInt(n/1000, 10))
		d = append(d, variation{cause: fmt.Sprintf("the %s %s is sent in milliseconds but was signed in seconds (%d)", name, raw, n/1000)})
	} else if n < 1<<40 {
		vals = append(vals, strconv.FormatInt(n*1000, 10))
		d = append(d, variation{cause: fmt.Sprintf("the %s %s is sent in seconds but was signed in milliseconds (%d)", name, raw, n*1000)})
	}
	return d, vals
}

// methodDim offers each sign method of methods, the declared one first.
func methodDim(declared string, methods []string, label func(string) string) (dim, []string) {
	vals := []string{declared}
	d := dim{{}}
	for _, m := range methods {
		if m == declared {
			continue
		}
		vals = append(vals, m)
		d = append(d, variation{cause: fmt.Sprintf("wrong sign method: the password is %s but %s is declared", label(m), label(declared))})
	}
	return d, vals
}

// Aliyun: ClientId "id|securemode=M,signmethod=S,timestamp=T|", username
// "deviceName&productKey", password hex(HMAC-S(secret, content)).
func doctorAliyun(d *doctor) {
	pk, dn := d.p.str("productKey", ""), d.p.str("deviceName", "")
	wantID := d.p.str("clientId", pk+"."+dn)
	method := d.p.str("signMethod", "hmacsha256")
	mode := d.p.int("secureMode", 2)

	// ClientId.
	id, rest, hasParams := strings.Cut(d.got.ClientID, "|")
	kv := map[string]string{}
	if hasParams {
		rest = strings.TrimSuffix(rest, "|")
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			kv[strings.ToLower(k)] = v
		}
	}
	ts, hasTS := kv["timestamp"]
	sentMethod, hasMethod := kv["signmethod"]
	switch {
	case !hasParams:
		d.add(PartClientID, StatusDiffers, Likely, "the ClientId has no \"|securemode=M,signmethod=S,timestamp=T|\" part: the platform cannot tell how the password was signed")
	case id != wantID:
		d.add(PartClientID, StatusDiffers, Likely, "the ClientId's id is %q, the device's clientId is %q (the id is signed, so the password is checked with the one sent)", clip(id), wantID)
	case !hasMethod || hashName(sentMethod) == "":
		d.add(PartClientID, StatusDiffers, Likely, "the ClientId's signmethod %q is not hmacsha256, hmacsha1 or hmacmd5", clip(sentMethod))
	case kv["securemode"] != strconv.Itoa(mode):
		d.add(PartClientID, StatusDiffers, Likely, "the ClientId says securemode=%s, the device is configured for securemode=%d (2 = TLS, 3 = plain TCP): the broker refuses a mode that does not match the connection", clip(kv["securemode"]), mode)
	default:
		note := ""
		if sentMethod != method {
			note = fmt.Sprintf(" (it declares signmethod=%s where the device is configured for %s; the platform accepts any of the three)", sentMethod, method)
		}
		d.add(PartClientID, StatusMatch, Certain, "the ClientId matches the recipe's form%s", note)
	}
	if hasTS {
		switch {
		case !digits(ts):
			d.add(PartClientID, StatusNote, Likely, "the ClientId's timestamp %q is not decimal", clip(ts))
		case len(ts) <= 10:
			d.add(PartClientID, StatusNote, Likely, "the ClientId's timestamp %s looks like seconds where the recipe writes milliseconds; aliyun does not check it, so only the password's consistency with it matters", ts)
		default:
			if n, err := strconv.ParseInt(ts, 10, 64); err == nil {
				skew := time.UnixMilli(n).Sub(d.now)
				if skew > 5*time.Minute || skew < -5*time.Minute {
					dir := "ahead"
					if skew < 0 {
						dir = "behind, or the triple is old"
					}
					d.add(PartClientID, StatusNote, Likely, "the timestamp %s is %s %s of %s (aliyun does not check it)", ts, human(skew), dir, d.now.Format(time.RFC3339))
				}
			}
		}
	}

	// Username.
	d.compareField(PartUsername, d.got.Username, dn+"&"+pk, map[string]string{
		pk + "&" + dn: "productKey and deviceName in the wrong order (the username is deviceName&productKey)",
		pk + "." + dn: "the ClientId's productKey.deviceName used as the username",
	})

	// Password.
	if !hasMethod || hashName(sentMethod) == "" {
		sentMethod = method
	}
	signedID := id
	if !hasParams {
		signedID = wantID
	}
	mDim, methods := methodDim(sentMethod, []string{"hmacsha256", "hmacsha1", "hmacmd5"}, hashName)
	tsDim, tsVals := unitDim("timestamp", ts)
	if !hasTS {
		tsVals = []string{""}
	}
	contentDim := dim{{},
		{cause: "the whole ClientId (with its |securemode=…| part) was signed as clientId instead of the bare id"},
		{cause: "the timestamp was left out of the signed content while the ClientId sends one"},
		{cause: "productKey and deviceName were swapped in the signed content"},
	}
	encDim := dim{{}, {cause: "upper-case hex, which the platform accepts", benign: true}, {cause: "the HMAC is base64-encoded instead of hex"}}
	keyDim := d.keyDim()
	dims := []dim{mDim, tsDim, contentDim, keyDim, encDim}
	sel, ok := d.search(dims, d.got.Password, func(s []int) string {
		key := d.keyFor(s[3])
		if key == nil {
			return ""
		}
		t := tsVals[s[1]]
		cid, p, n := signedID, pk, dn
		switch s[2] {
		case 1:
			if !hasParams {
				return ""
			}
			cid = d.got.ClientID
		case 2:
			if !hasTS {
				return ""
			}
			t = ""
		case 3:
			p, n = dn, pk
		}
		content := "clientId" + cid + "deviceName" + n + "productKey" + p
		if t != "" {
			content += "timestamp" + t
		}
		sum := mac(hashFor(methods[s[0]]), key, content)
		switch s[4] {
		case 1:
			return strings.ToUpper(hex.EncodeToString(sum))
		case 2:
			return base64.StdEncoding.EncodeToString(sum)
		}
		return hex.EncodeToString(sum)
	})
	context := ""
	if hasTS {
		context = " with the timestamp " + ts + " the ClientId sends"
		if digits(ts) && len(ts) >= 13 {
			context += " (read as milliseconds)"
		}
	}
	d.passwordFinding(dims, sel, ok, context, hexShape(d.got.Password, sentMethod))
}

// hashName names the HMAC of an aliyun or tencent sign method; "" when
// unknown.
func hashName(method string) string {
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

// hexShape says what a hex password's length suggests about its hash.
func hexShape(pw, declared string) string {
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
	if want := hashName(declared); want != "" && want != alg {
		return fmt.Sprintf("its length (%d hex digits) is that of %s while %s is declared", len(pw), alg, want)
	}
	return fmt.Sprintf("its form (%d hex digits, %s) is right, so the secret is the likely cause", len(pw), alg)
}

// Tencent: ClientId productId+deviceName, username
// "clientId;sdkAppId;connId;expiry", password
// hex(HMAC(b64d(PSK), username)) + ";" + method.
func doctorTencent(d *doctor) {
	pid, dn := d.p.str("productId", ""), d.p.str("deviceName", "")
	method := d.p.str("signMethod", "hmacsha256")
	d.compareField(PartClientID, d.got.ClientID, pid+dn, map[string]string{
		dn + pid:       "productId and deviceName in the wrong order (the ClientId is productId + deviceName)",
		pid + "." + dn: "a separator between productId and deviceName (there is none)",
		pid + "/" + dn: "a separator between productId and deviceName (there is none)",
	})

	f := strings.Split(d.got.Username, ";")
	if len(f) != 4 {
		d.add(PartUsername, StatusDiffers, Likely, "the username has %d ;-separated fields, the recipe's four: clientId;sdkAppId;connId;expiry", len(f))
	} else {
		switch {
		case f[0] != pid+dn:
			d.add(PartUsername, StatusDiffers, Likely, "the username starts with %q, the recipe with the ClientId %q", clip(f[0]), pid+dn)
		case !digits(f[1]):
			d.add(PartUsername, StatusDiffers, Likely, "the username's sdkAppId %q is not decimal (12010126 or 21010406)", clip(f[1]))
		case checkConnID(f[2]) != nil:
			d.add(PartUsername, StatusDiffers, Likely, "the username's connId %q is not 5 letters or digits", clip(f[2]))
		default:
			d.add(PartUsername, StatusMatch, Certain, "the username has the recipe's form clientId;sdkAppId;connId;expiry")
		}
		d.checkExpiry(PartUsername, "expiry", f[3])
	}

	// The password signs the username as sent.
	sig, sentMethod, hasMethod := strings.Cut(d.got.Password, ";")
	if !hasMethod || hashName(sentMethod) == "" || sentMethod == "hmacmd5" {
		d.add(PartPassword, StatusDiffers, Likely, "the password does not end in \";hmacsha256\" or \";hmacsha1\" naming its HMAC")
		sentMethod = method
	}
	mDim, methods := methodDim(sentMethod, []string{"hmacsha256", "hmacsha1"}, hashName)
	encDim := dim{{}, {cause: "upper-case hex where the recipe writes lower case"}, {cause: "the HMAC is base64-encoded instead of hex"}}
	dims := []dim{mDim, d.keyDim(), encDim}
	sel, ok := d.search(dims, sig, func(s []int) string {
		sum := mac(hashFor(methods[s[0]]), d.keyFor(s[1]), d.got.Username)
		switch s[2] {
		case 1:
			return strings.ToUpper(hex.EncodeToString(sum))
		case 2:
			return base64.StdEncoding.EncodeToString(sum)
		}
		return hex.EncodeToString(sum)
	})
	d.passwordFinding(dims, sel, ok, " over the username as sent", hexShape(sig, sentMethod))
}

// Huawei: ClientId "deviceId_0_F_YYYYMMDDHH", username deviceId, password
// hex(HMAC-SHA256(key = timestamp, msg = secret)).
func doctorHuawei(d *doctor) {
	deviceID := d.p.str("deviceId", "")
	check := d.p.bool("checkTimestamp", true)
	d.compareField(PartUsername, d.got.Username, deviceID, nil)

	cid := d.got.ClientID
	ts, flag := "", byte(0)
	if n := len(cid); n >= len(deviceID)+15 && cid[:n-15] == deviceID && cid[n-15:n-12] == "_0_" && cid[n-11] == '_' {
		ts, flag = cid[n-10:], cid[n-12]
	}
	var stamp time.Time
	var err error
	if ts != "" {
		stamp, err = time.Parse("2006010215", ts)
	}
	switch {
	case ts == "" || err != nil:
		d.add(PartClientID, StatusDiffers, Likely, "the ClientId %q is not deviceId_0_F_YYYYMMDDHH for deviceId %q", clip(cid), deviceID)
	case flag != '0' && flag != '1':
		d.add(PartClientID, StatusDiffers, Likely, "the ClientId's flag is %q, not 0 or 1", string(flag))
	case flag == '1':
		hour := d.now.Truncate(time.Hour)
		off := stamp.Sub(hour)
		switch {
		case off == 0:
			d.add(PartClientID, StatusMatch, Certain, "the ClientId matches the recipe: the timestamp %s is the current UTC hour", ts)
		case off == 8*time.Hour:
			d.add(PartClientID, StatusDiffers, Likely, "the timestamp %s is 8 hours ahead of the UTC hour %s: local time (UTC+8, China) was written instead of UTC", ts, hour.Format("2006010215"))
		case off > 0:
			d.add(PartClientID, StatusDiffers, Likely, "the timestamp %s is %s ahead of the UTC hour %s: the device clock is ahead (or set to a time zone other than UTC)", ts, human(off), hour.Format("2006010215"))
		default:
			d.add(PartClientID, StatusDiffers, Likely, "the timestamp %s is %s behind the UTC hour %s and the platform checks it (flag 1): a stale triple, or the device clock is behind (or in a time zone west of UTC)", ts, human(off), hour.Format("2006010215"))
		}
	default:
		note := ""
		if check {
			note = " (the device is configured for flag 1; with 0 the platform does not check the timestamp)"
		}
		d.add(PartClientID, StatusMatch, Certain, "the ClientId matches the recipe's form with flag 0: the timestamp is not checked%s", note)
	}
	if ts == "" || err != nil {
		st := hourStamp(d.now)
		ts = string(st[:])
	}

	// The hour signed may differ from the hour sent.
	hourDim := dim{{}}
	hours := []string{ts}
	if st, err := time.Parse("2006010215", ts); err == nil {
		for _, h := range []int{8, -8, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 9, -9, 10, -10, 11, -11, 12, -12, 13, -13, 14} {
			other := st.Add(time.Duration(h) * time.Hour).Format("2006010215")
			hours = append(hours, other)
			why := ""
			if h == 8 {
				why = " (local time UTC+8 in the password, UTC in the ClientId)"
			}
			hourDim = append(hourDim, variation{cause: fmt.Sprintf("the password was signed with the hour %s, the ClientId sends %s%s", other, ts, why)})
		}
	}
	swapDim := dim{{}, {cause: "key and message swapped: the HMAC was keyed by the secret over the timestamp (the timestamp is the key, the secret the message)"}}
	encDim := dim{{}, {cause: "upper-case hex where the recipe writes lower case"}}
	dims := []dim{hourDim, swapDim, encDim}
	sel, ok := d.search(dims, d.got.Password, func(s []int) string {
		var sum []byte
		if s[1] == 1 {
			sum = mac(sha256.New, d.key, hours[s[0]])
		} else {
			sum = mac(sha256.New, []byte(hours[s[0]]), d.secret)
		}
		if s[2] == 1 {
			return strings.ToUpper(hex.EncodeToString(sum))
		}
		return hex.EncodeToString(sum)
	})
	d.passwordFinding(dims, sel, ok, " with the hour "+ts+" the ClientId sends", hexShape(d.got.Password, "hmacsha256"))
}

// tokenFields splits a query-like token "k=v&k=v" keeping the values as
// sent (not URL-decoded).
func tokenFields(s string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Split(s, "&") {
		k, v, _ := strings.Cut(f, "=")
		if _, dup := out[k]; !dup {
			out[k] = v
		}
	}
	return out
}

// sigDim is how a base64 signature is written into a token: URL-encoded
// (the recipe), not URL-encoded, base64url, or hex.
var sigDim = dim{{},
	{cause: "the signature's base64 is not URL-encoded in the password"},
	{cause: "the signature is base64url instead of URL-encoded standard base64"},
	{cause: "the signature is hex instead of base64"},
}

func encodeSig(s int, sum []byte) string {
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

// Azure: ClientId deviceId[/moduleId], username
// "hub/deviceId[/moduleId]/?api-version=V", password
// "SharedAccessSignature sr=urlenc(resource)&sig=urlenc(b64(HMAC-SHA256(b64d(key), sr+"\n"+se)))&se=SE[&skn=policy]".
func doctorAzure(d *doctor) {
	hub, dev, mod := d.p.str("hubHost", ""), d.p.str("deviceId", ""), d.p.str("moduleId", "")
	policy := d.p.str("policyName", "")
	id := dev
	if mod != "" {
		id += "/" + mod
	}
	d.compareField(PartClientID, d.got.ClientID, id, nil)
	userPrefix := hub + "/" + id + "/?api-version="
	switch {
	case strings.HasPrefix(d.got.Username, userPrefix) && len(d.got.Username) > len(userPrefix):
		d.add(PartUsername, StatusMatch, Certain, "the username matches the recipe's form %s{version}", userPrefix)
	default:
		d.compareField(PartUsername, d.got.Username, userPrefix+d.p.str("apiVersion", "2021-04-12"), map[string]string{
			hub + "/" + id:       "the ?api-version= part is missing",
			hub + "/" + id + "/": "the ?api-version= part is missing",
			id:                   "the hub host is missing",
		})
	}

	resource := hub + "/devices/" + dev
	if mod != "" {
		resource += "/modules/" + mod
	}
	sr := string(appendQueryEscape(nil, resource))
	token, isSAS := strings.CutPrefix(d.got.Password, "SharedAccessSignature ")
	if !isSAS {
		d.add(PartPassword, StatusDiffers, Likely, "the password does not start with \"SharedAccessSignature \": it is not a SAS token (a connection string or a bare key sent instead?)")
		return
	}
	f := tokenFields(token)
	se, hasSE := f["se"]
	switch gotSR := f["sr"]; {
	case gotSR == sr, strings.EqualFold(gotSR, sr):
	case gotSR == resource:
		d.add(PartPassword, StatusDiffers, Likely, "the sr %q is not URL-encoded (the recipe's is %q)", clip(gotSR), sr)
	default:
		d.add(PartPassword, StatusDiffers, Likely, "the sr %q names another resource than the recipe's %q", clip(gotSR), sr)
	}
	if skn, hasSKN := f["skn"]; hasSKN != (policy != "") || (hasSKN && skn != string(appendQueryEscape(nil, policy))) {
		if policy == "" {
			d.add(PartPassword, StatusDiffers, Likely, "the token names a policy (skn=%q) but the device's key is a device key", clip(skn))
		} else {
			d.add(PartPassword, StatusDiffers, Likely, "the token must name the policy %q in skn (the key is a policy key)", policy)
		}
	}
	if !hasSE {
		d.add(PartPassword, StatusDiffers, Likely, "the token has no se (expiry)")
		return
	}
	d.checkExpiry(PartPassword, "se", se)

	seDim, seVals := unitDim("se", se)
	srDim := dim{{}, {cause: "the raw resource was signed instead of the URL-encoded sr"}}
	dims := []dim{seDim, srDim, d.keyDim(), sigDim}
	sel, ok := d.search(dims, f["sig"], func(s []int) string {
		res := sr
		if s[1] == 1 {
			res = resource
		}
		return encodeSig(s[3], mac(sha256.New, d.keyFor(s[2]), res+"\n"+seVals[s[0]]))
	})
	d.passwordFinding(dims, sel, ok, " with the se "+se+" the token sends", "")
}

// OneNET: ClientId deviceName, username productId, password
// "version=2018-10-31&res=urlenc(res)&et=ET&method=M&sign=urlenc(b64(HMAC-M(b64d(key), et\nmethod\nres\nversion)))".
func doctorOneNET(d *doctor) {
	pid, dn := d.p.str("productId", ""), d.p.str("deviceName", "")
	method := d.p.str("signMethod", "sha256")
	swapped := d.got.ClientID == pid && d.got.Username == dn && pid != dn
	if swapped {
		d.add(PartClientID, StatusDiffers, Certain, "the ClientId is the productId and the username the deviceName: swapped (ClientId = deviceName, username = productId)")
	} else {
		d.compareField(PartClientID, d.got.ClientID, dn, nil)
		d.compareField(PartUsername, d.got.Username, pid, nil)
	}

	f := tokenFields(d.got.Password)
	if v := f["version"]; v != onenetVersion {
		d.add(PartPassword, StatusDiffers, Likely, "the token's version is %q; OneNET accepts only %s", clip(v), onenetVersion)
	}
	sentMethod := f["method"]
	switch sentMethod {
	case "sha256", "sha1", "md5":
		if sentMethod != method {
			d.add(PartPassword, StatusNote, Likely, "the token says method=%s where the device is configured for %s (the platform checks the method the token names)", sentMethod, method)
		}
	case "hmacsha256", "hmacsha1", "hmacmd5":
		d.add(PartPassword, StatusDiffers, Likely, "method=%s: OneNET names it %s, without hmac", sentMethod, strings.TrimPrefix(sentMethod, "hmac"))
	default:
		d.add(PartPassword, StatusDiffers, Likely, "the token's method %q is not sha256, sha1 or md5", clip(sentMethod))
		sentMethod = method
	}
	devRes := "products/" + pid + "/devices/" + dn
	prodRes := "products/" + pid
	wantRes := devRes
	if d.p.str("keyScope", "device") == "product" {
		wantRes = prodRes
	}
	otherRes := devRes
	if wantRes == devRes {
		otherRes = prodRes
	}
	switch gotRes := f["res"]; gotRes {
	case url.QueryEscape(wantRes):
	case wantRes:
		d.add(PartPassword, StatusDiffers, Likely, "the res %q is not URL-encoded", clip(gotRes))
	case url.QueryEscape(otherRes), otherRes:
		d.add(PartPassword, StatusDiffers, Likely, "the res %q is for a %s key, but the device is configured with keyScope %s (res %q)", clip(gotRes), map[bool]string{true: "device", false: "product"}[otherRes == devRes], d.p.str("keyScope", "device"), wantRes)
	default:
		d.add(PartPassword, StatusDiffers, Likely, "the res %q is not the recipe's %q", clip(gotRes), url.QueryEscape(wantRes))
	}
	et, hasET := f["et"]
	if !hasET {
		d.add(PartPassword, StatusDiffers, Likely, "the token has no et (expiry)")
		return
	}
	d.checkExpiry(PartPassword, "et", et)

	signedMethod := strings.TrimPrefix(f["method"], "hmac")
	if hashName("hmac"+signedMethod) == "" {
		signedMethod = sentMethod
	}
	label := func(m string) string { return "HMAC-" + strings.ToUpper(m) }
	mDim, methods := methodDim(strings.TrimPrefix(sentMethod, "hmac"), []string{"sha256", "sha1", "md5"}, label)
	etDim, etVals := unitDim("et", et)
	resDim := dim{{}, {cause: fmt.Sprintf("the res signed is %q, the %s key's, not the one the device is configured for", otherRes, map[bool]string{true: "device", false: "product"}[otherRes == devRes])}}
	orderDim := dim{{}, {cause: "the fields were signed in the token's order (version, res, et, method) instead of et, method, res, version"}}
	dims := []dim{mDim, d.keyDim(), etDim, resDim, orderDim, sigDim}
	sel, ok := d.search(dims, f["sign"], func(s []int) string {
		res := wantRes
		if s[3] == 1 {
			res = otherRes
		}
		msg := etVals[s[2]] + "\n" + signedMethod + "\n" + res + "\n" + onenetVersion
		if s[4] == 1 {
			msg = onenetVersion + "\n" + res + "\n" + etVals[s[2]] + "\n" + signedMethod
		}
		return encodeSig(s[5], mac(hashFor(methods[s[0]]), d.keyFor(s[1]), msg))
	})
	d.passwordFinding(dims, sel, ok, " with the et "+et+" the token sends", "")
}
