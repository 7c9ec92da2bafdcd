package cloudemu

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The verifiers below are written from docs/clouds.md and the vendors'
// documents, independently of the recipes in cloud/: a bug there must not be
// mirrored here.

// ErrBadCredentials is wrapped by every verification failure caused by a
// triple that does not match the device's secret.
var ErrBadCredentials = errors.New("bad username or password")

// ErrExpired is wrapped by verification failures caused by an expiry or
// timestamp the cloud enforces.
var ErrExpired = errors.New("credentials expired")

// ErrUnknownDevice is wrapped when the triple names a device the emulator
// does not know.
var ErrUnknownDevice = errors.New("unknown device")

// verdict is what a successful verification tells the broker.
type verdict struct {
	// expires is when the cloud stops the session; zero when it never does.
	expires time.Time
}

// secrets finds a device's secret by the cloud's identity key.
type secrets func(key string) (string, bool)

func hmacSum(newHash func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(newHash, key)
	m.Write(msg)
	return m.Sum(nil)
}

func hmacHex(newHash func() hash.Hash, key, msg []byte) string {
	return hex.EncodeToString(hmacSum(newHash, key, msg))
}

// base64Secret finds the secret kept under lookup and decodes it from
// standard base64, as tencent, azure and onenet keep theirs.
func base64Secret(find secrets, cloud, lookup string) ([]byte, error) {
	s, ok := find(lookup)
	if !ok {
		return nil, fmt.Errorf("%w: %s %s", ErrUnknownDevice, cloud, lookup)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s %s: key is not base64: %w", cloud, lookup, err)
	}
	return key, nil
}

func equalFold(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(a)), []byte(strings.ToLower(b))) == 1
}

// aliyunClientID is the parsed MQTT ClientId of Alibaba Cloud IoT Platform:
// clientId|securemode=M,signmethod=S,timestamp=T|
type aliyunClientID struct {
	id, secureMode, signMethod, timestamp string
}

func parseAliyunClientID(s string) (aliyunClientID, error) {
	var out aliyunClientID
	i := strings.IndexByte(s, '|')
	if i < 0 || !strings.HasSuffix(s, "|") || i == len(s)-1 {
		return out, fmt.Errorf("aliyun ClientId %q: want id|k=v,…|", s)
	}
	out.id = s[:i]
	if out.id == "" || len(out.id) > 64 {
		return out, fmt.Errorf("aliyun ClientId: id must be 1 to 64 characters")
	}
	for _, kv := range strings.Split(s[i+1:len(s)-1], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return out, fmt.Errorf("aliyun ClientId: parameter %q has no value", kv)
		}
		switch k {
		case "securemode":
			out.secureMode = v
		case "signmethod":
			out.signMethod = v
		case "timestamp":
			out.timestamp = v
		default:
			// Other parameters (gw, ext, _v) are not signed: ignore them.
		}
	}
	if out.signMethod == "" {
		return out, fmt.Errorf("aliyun ClientId: no signmethod")
	}
	if out.secureMode != "2" && out.secureMode != "3" && out.secureMode != "" {
		return out, fmt.Errorf("aliyun ClientId: securemode %q", out.secureMode)
	}
	return out, nil
}

// verifyAliyun checks an Alibaba Cloud triple. The platform does not enforce
// the timestamp, so neither does this.
func verifyAliyun(clientID, username, password string, tls bool, find secrets) (verdict, error) {
	cid, err := parseAliyunClientID(clientID)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	dn, pk, ok := strings.Cut(username, "&")
	if !ok || dn == "" || pk == "" {
		return verdict{}, fmt.Errorf("%w: aliyun username %q: want deviceName&productKey", ErrBadCredentials, username)
	}
	if want := map[bool]string{true: "2", false: "3"}[tls]; cid.secureMode != "" && cid.secureMode != want {
		return verdict{}, fmt.Errorf("%w: aliyun securemode=%s on a connection with tls=%t", ErrBadCredentials, cid.secureMode, tls)
	}
	secret, ok := find(pk + "/" + dn)
	if !ok {
		return verdict{}, fmt.Errorf("%w: aliyun %s/%s", ErrUnknownDevice, pk, dn)
	}
	h, ok := map[string]func() hash.Hash{"hmacsha256": sha256.New, "hmacsha1": sha1.New, "hmacmd5": md5.New}[cid.signMethod]
	if !ok {
		return verdict{}, fmt.Errorf("%w: aliyun signmethod %q", ErrBadCredentials, cid.signMethod)
	}
	content := "clientId" + cid.id + "deviceName" + dn + "productKey" + pk
	if cid.timestamp != "" {
		content += "timestamp" + cid.timestamp
	}
	if !equalFold(hmacHex(h, []byte(secret), []byte(content)), password) {
		return verdict{}, fmt.Errorf("%w: aliyun password does not match", ErrBadCredentials)
	}
	return verdict{}, nil
}

// tencentUsername is the parsed username of Tencent Cloud IoT:
// clientId;sdkAppId;connId;expiry
type tencentUsername struct {
	clientID, sdkAppID, connID string
	expiry                     time.Time
}

func parseTencentUsername(s string) (tencentUsername, error) {
	var out tencentUsername
	parts := strings.Split(s, ";")
	if len(parts) != 4 {
		return out, fmt.Errorf("tencent username: want clientId;sdkAppId;connId;expiry, got %d fields", len(parts))
	}
	out.clientID, out.sdkAppID, out.connID = parts[0], parts[1], parts[2]
	if out.clientID == "" || out.sdkAppID == "" || out.connID == "" {
		return out, fmt.Errorf("tencent username: empty field")
	}
	sec, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || sec <= 0 {
		return out, fmt.Errorf("tencent username: expiry %q is not Unix seconds", parts[3])
	}
	out.expiry = time.Unix(sec, 0)
	return out, nil
}

// verifyTencent checks a Tencent Cloud triple and refuses an expired one.
func verifyTencent(clientID, username, password string, now time.Time, find secrets) (verdict, error) {
	u, err := parseTencentUsername(username)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	if u.clientID != clientID {
		return verdict{}, fmt.Errorf("%w: tencent username names client %q, ClientId is %q", ErrBadCredentials, u.clientID, clientID)
	}
	key, err := base64Secret(find, "tencent", clientID)
	if err != nil {
		return verdict{}, err
	}
	sig, method, ok := strings.Cut(password, ";")
	if !ok {
		return verdict{}, fmt.Errorf("%w: tencent password: want hex;method", ErrBadCredentials)
	}
	h, ok := map[string]func() hash.Hash{"hmacsha256": sha256.New, "hmacsha1": sha1.New}[method]
	if !ok {
		return verdict{}, fmt.Errorf("%w: tencent sign method %q", ErrBadCredentials, method)
	}
	if !equalFold(hmacHex(h, key, []byte(username)), sig) {
		return verdict{}, fmt.Errorf("%w: tencent password does not match", ErrBadCredentials)
	}
	if !now.Before(u.expiry) {
		return verdict{}, fmt.Errorf("%w: tencent username expired at %s", ErrExpired, u.expiry.UTC().Format(time.RFC3339))
	}
	return verdict{}, nil
}

// huaweiClientID is the parsed MQTT ClientId of Huawei IoTDA:
// deviceId_0_F_YYYYMMDDHH
type huaweiClientID struct {
	deviceID       string
	checkTimestamp bool
	ts             string
	hour           time.Time
}

func parseHuaweiClientID(s string) (huaweiClientID, error) {
	var out huaweiClientID
	parts := strings.Split(s, "_")
	if len(parts) < 4 {
		return out, fmt.Errorf("huawei ClientId %q: want deviceId_0_F_YYYYMMDDHH", s)
	}
	n := len(parts)
	out.deviceID = strings.Join(parts[:n-3], "_")
	if out.deviceID == "" {
		return out, fmt.Errorf("huawei ClientId: empty device id")
	}
	if parts[n-3] != "0" {
		return out, fmt.Errorf("huawei ClientId: identity type %q, only 0 (device id) is supported", parts[n-3])
	}
	switch parts[n-2] {
	case "0":
	case "1":
		out.checkTimestamp = true
	default:
		return out, fmt.Errorf("huawei ClientId: signature type %q", parts[n-2])
	}
	out.ts = parts[n-1]
	hour, err := time.Parse("2006010215", out.ts)
	if err != nil || len(out.ts) != 10 {
		return out, fmt.Errorf("huawei ClientId: timestamp %q is not YYYYMMDDHH", out.ts)
	}
	out.hour = hour
	return out, nil
}

// verifyHuawei checks a Huawei IoTDA triple. With F=1 it refuses a stale hour:
// Huawei's custom-authentication page says a check fails "if the device
// timestamp plus one hour is less than the platform time"; a timestamp more
// than an hour ahead is refused too.
func verifyHuawei(clientID, username, password string, now time.Time, find secrets) (verdict, error) {
	cid, err := parseHuaweiClientID(clientID)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	if username != cid.deviceID {
		return verdict{}, fmt.Errorf("%w: huawei username %q is not the ClientId's device %q", ErrBadCredentials, username, cid.deviceID)
	}
	secret, ok := find(cid.deviceID)
	if !ok {
		return verdict{}, fmt.Errorf("%w: huawei %s", ErrUnknownDevice, cid.deviceID)
	}
	if !equalFold(hmacHex(sha256.New, []byte(cid.ts), []byte(secret)), password) {
		return verdict{}, fmt.Errorf("%w: huawei password does not match", ErrBadCredentials)
	}
	if cid.checkTimestamp {
		if cid.hour.Add(time.Hour).Before(now) {
			return verdict{}, fmt.Errorf("%w: huawei timestamp %s is stale", ErrExpired, cid.ts)
		}
		if cid.hour.After(now.Add(time.Hour)) {
			return verdict{}, fmt.Errorf("%w: huawei timestamp %s is in the future", ErrBadCredentials, cid.ts)
		}
	}
	return verdict{}, nil
}

// azureUsername is the parsed username of Azure IoT Hub:
// hubHost/deviceId[/moduleId]/?api-version=V
type azureUsername struct {
	hubHost, deviceID, moduleID, apiVersion string
}

func parseAzureUsername(s string) (azureUsername, error) {
	var out azureUsername
	path, query, ok := strings.Cut(s, "/?")
	if !ok {
		return out, fmt.Errorf("azure username: no /?api-version")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return out, fmt.Errorf("azure username: query: %w", err)
	}
	out.apiVersion = q.Get("api-version")
	if out.apiVersion == "" {
		return out, fmt.Errorf("azure username: no api-version")
	}
	parts := strings.Split(path, "/")
	switch len(parts) {
	case 2:
		out.hubHost, out.deviceID = parts[0], parts[1]
	case 3:
		out.hubHost, out.deviceID, out.moduleID = parts[0], parts[1], parts[2]
	default:
		return out, fmt.Errorf("azure username: want hubHost/deviceId[/moduleId]")
	}
	if out.hubHost == "" || out.deviceID == "" || (len(parts) == 3 && out.moduleID == "") {
		return out, fmt.Errorf("azure username: empty field")
	}
	return out, nil
}

// azureSAS is a parsed SharedAccessSignature password. sr and sig are kept
// exactly as sent (percent-encoded) because sr is signed as sent.
type azureSAS struct {
	sr, sig, skn string
	se           int64
}

func parseAzureSAS(s string) (azureSAS, error) {
	var out azureSAS
	rest, ok := strings.CutPrefix(s, "SharedAccessSignature ")
	if !ok {
		return out, fmt.Errorf("azure password: not a SharedAccessSignature")
	}
	var se string
	for _, kv := range strings.Split(rest, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return out, fmt.Errorf("azure password: field without value")
		}
		switch k {
		case "sr":
			out.sr = v
		case "sig":
			out.sig = v
		case "se":
			se = v
		case "skn":
			out.skn = v
		default:
			return out, fmt.Errorf("azure password: unknown field %q", k)
		}
	}
	if out.sr == "" || out.sig == "" || se == "" {
		return out, fmt.Errorf("azure password: sr, sig and se are required")
	}
	n, err := strconv.ParseInt(se, 10, 64)
	if err != nil || n <= 0 {
		return out, fmt.Errorf("azure password: se %q is not Unix seconds", se)
	}
	out.se = n
	return out, nil
}

// azureKey is the lookup key of an Azure identity; with a policy name the
// emulator looks up that policy's key on the hub.
func azureKey(hubHost, deviceID, moduleID string) string {
	k := hubHost + "/devices/" + deviceID
	if moduleID != "" {
		k += "/modules/" + moduleID
	}
	return k
}

// verifyAzure checks an Azure IoT Hub triple and returns when its SAS token
// lapses: the hub disconnects the client then.
func verifyAzure(clientID, username, password string, tls bool, now time.Time, find secrets) (verdict, error) {
	u, err := parseAzureUsername(username)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	wantID := u.deviceID
	if u.moduleID != "" {
		wantID += "/" + u.moduleID
	}
	if clientID != wantID {
		return verdict{}, fmt.Errorf("%w: azure ClientId %q does not match username device %q", ErrBadCredentials, clientID, wantID)
	}
	if !tls {
		return verdict{}, fmt.Errorf("%w: azure requires TLS", ErrBadCredentials)
	}
	sas, err := parseAzureSAS(password)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	resource := azureKey(u.hubHost, u.deviceID, u.moduleID)
	if sas.sr != url.QueryEscape(resource) && !strings.EqualFold(sas.sr, url.QueryEscape(resource)) {
		return verdict{}, fmt.Errorf("%w: azure sr does not name %s", ErrBadCredentials, resource)
	}
	lookup := resource
	if sas.skn != "" {
		lookup = u.hubHost + "/policies/" + sas.skn
	}
	key, err := base64Secret(find, "azure", lookup)
	if err != nil {
		return verdict{}, err
	}
	sig, err := url.QueryUnescape(sas.sig)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: azure sig is not URL-encoded: %w", ErrBadCredentials, err)
	}
	want := base64.StdEncoding.EncodeToString(hmacSum(sha256.New, key, []byte(sas.sr+"\n"+strconv.FormatInt(sas.se, 10))))
	if subtle.ConstantTimeCompare([]byte(want), []byte(sig)) != 1 {
		return verdict{}, fmt.Errorf("%w: azure signature does not match", ErrBadCredentials)
	}
	exp := time.Unix(sas.se, 0)
	if !now.Before(exp) {
		return verdict{}, fmt.Errorf("%w: azure SAS token expired at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	return verdict{expires: exp}, nil
}
