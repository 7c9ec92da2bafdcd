package cloudemu

import (
	"crypto"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Verifiers for OneNET, Baidu, Tuya (docs/clouds.md) and for the token
// family (jwt, aws), again written from the vendors' documents and
// independently of the recipes in cloud/.

// verifyOneNET checks a OneNET Studio token. OneNET refuses a token whose
// et has passed at CONNECT ("the platform considers the access expired"),
// and does not cut a live session.
func verifyOneNET(clientID, username, password string, now time.Time, find secrets) (verdict, error) {
	q, err := url.ParseQuery(password)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: onenet token is not a query string: %w", ErrBadCredentials, err)
	}
	version, res, et, method, sign := q.Get("version"), q.Get("res"), q.Get("et"), q.Get("method"), q.Get("sign")
	if version != "2018-10-31" || res == "" || et == "" || sign == "" {
		return verdict{}, fmt.Errorf("%w: onenet token needs version=2018-10-31, res, et, method and sign", ErrBadCredentials)
	}
	if res != "products/"+username && res != "products/"+username+"/devices/"+clientID {
		return verdict{}, fmt.Errorf("%w: onenet res %q does not name product %q or its device %q", ErrBadCredentials, res, username, clientID)
	}
	h, ok := map[string]func() hash.Hash{"sha256": sha256.New, "sha1": sha1.New, "md5": md5.New}[method]
	if !ok {
		return verdict{}, fmt.Errorf("%w: onenet method %q", ErrBadCredentials, method)
	}
	sec, err := strconv.ParseInt(et, 10, 64)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: onenet et %q is not Unix seconds", ErrBadCredentials, et)
	}
	key, err := base64Secret(find, "onenet", res)
	if err != nil {
		return verdict{}, err
	}
	want := base64.StdEncoding.EncodeToString(hmacSum(h, key, []byte(et+"\n"+method+"\n"+res+"\n"+version)))
	if subtle.ConstantTimeCompare([]byte(want), []byte(sign)) != 1 {
		return verdict{}, fmt.Errorf("%w: onenet sign does not match", ErrBadCredentials)
	}
	if exp := time.Unix(sec, 0); exp.Before(now) {
		return verdict{}, fmt.Errorf("%w: onenet token expired at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	return verdict{}, nil
}

// baiduSkew is the error Baidu allows between the timestamp and its clock:
// "时间戳会与服务器时间判比，最大误差允许10min；若无法保证时间准确性，计算时需传入0
// 进行占位" (Baidu AI Cloud IoT Core docs, "通过MQTT连接及收发消息",
// cloud.baidu.com/doc/IoTCore/s/Akck4811r).
const baiduSkew = 10 * time.Minute

// verifyBaidu checks a Baidu IoT Core username and hashed password as the
// same page documents them: thingidp@{IoTCoreId}|{DeviceKey}|{timestamp}|{algorithm},
// the timestamp and algorithm optional (MD5 by default, 0 in the string
// hashed when no timestamp is sent), the password the lower-case hex of
// MD5 or SHA-256 over {DeviceKey}&{timestamp}&{algorithm}{DeviceSecret}.
// A timestamp more than 10 minutes from the clock is refused at CONNECT;
// 0 is never checked. A live session is not cut.
func verifyBaidu(username, password string, now time.Time, find secrets) (verdict, error) {
	rest, ok := strings.CutPrefix(username, "thingidp@")
	if !ok {
		return verdict{}, fmt.Errorf("%w: baidu username must start with thingidp@", ErrBadCredentials)
	}
	f := strings.Split(rest, "|")
	core, dk, ts, method := "", "", "0", "MD5"
	switch len(f) {
	case 4:
		core, dk, ts, method = f[0], f[1], f[2], f[3]
	case 3:
		core, dk, method = f[0], f[1], f[2]
	case 2:
		core, dk = f[0], f[1]
	default:
		return verdict{}, fmt.Errorf("%w: baidu username: want thingidp@core|key|timestamp|method", ErrBadCredentials)
	}
	secret, ok := find(core + "/" + dk)
	if !ok {
		return verdict{}, fmt.Errorf("%w: baidu %s/%s", ErrUnknownDevice, core, dk)
	}
	msg := []byte(dk + "&" + ts + "&" + method + secret)
	h, ok := map[string]func() hash.Hash{"MD5": md5.New, "SHA256": sha256.New}[method]
	if !ok {
		return verdict{}, fmt.Errorf("%w: baidu algorithm %q", ErrBadCredentials, method)
	}
	sum := h()
	sum.Write(msg)
	if !equalFold(hex.EncodeToString(sum.Sum(nil)), password) {
		return verdict{}, fmt.Errorf("%w: baidu password does not match", ErrBadCredentials)
	}
	if ts != "0" {
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return verdict{}, fmt.Errorf("%w: baidu timestamp %q is not Unix seconds", ErrBadCredentials, ts)
		}
		if d := now.Sub(time.Unix(sec, 0)); d > baiduSkew || d < -baiduSkew {
			return verdict{}, fmt.Errorf("%w: baidu timestamp %s is more than 10 minutes from %s", ErrExpired, time.Unix(sec, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	return verdict{}, nil
}

// verifyTuya checks a TuyaLink triple. Tuya documents no validity window
// for the timestamp: not enforced.
func verifyTuya(clientID, username, password string, find secrets) (verdict, error) {
	id, ok := strings.CutPrefix(clientID, "tuyalink_")
	if !ok {
		return verdict{}, fmt.Errorf("%w: tuya ClientId must be tuyalink_{deviceId}", ErrBadCredentials)
	}
	uid, opts, ok := strings.Cut(username, "|")
	if !ok || uid != id {
		return verdict{}, fmt.Errorf("%w: tuya username must be {deviceId}|… for ClientId %q", ErrBadCredentials, clientID)
	}
	kv := map[string]string{}
	for _, part := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(part, "=")
		kv[strings.ToLower(k)] = v
	}
	if kv["signmethod"] != "hmacSha256" || kv["timestamp"] == "" {
		return verdict{}, fmt.Errorf("%w: tuya username needs signMethod=hmacSha256 and a timestamp", ErrBadCredentials)
	}
	secret, ok := find(id)
	if !ok {
		return verdict{}, fmt.Errorf("%w: tuya %s", ErrUnknownDevice, id)
	}
	content := "deviceId=" + id + ",timestamp=" + kv["timestamp"] + ",secureMode=" + kv["securemode"] + ",accessType=" + kv["accesstype"]
	if !equalFold(hmacHex(sha256.New, []byte(secret), []byte(content)), password) {
		return verdict{}, fmt.Errorf("%w: tuya password does not match", ErrBadCredentials)
	}
	return verdict{}, nil
}

// verifyTuyaLegacy checks a login of Tuya's older device protocol, as
// Tuya's own SDKs build it (no Tuya document describes the broker side):
// tuya/tuya-connect-kit-for-mqtt-embedded-c src/mqtt_service.c
// tuya_mqtt_signature_tool, activated branch, and
// tuya/tuyaos-link-sdk-python tuyalinksdk/mqtt_builder.py login_sign:
// ClientId and username the devId, password the 16 hex digits printed
// "%02x" from bytes 4 to 11 of MD5(secKey). The password never expires.
func verifyTuyaLegacy(clientID, username, password string, find secrets) (verdict, error) {
	if clientID == "" || username != clientID {
		return verdict{}, fmt.Errorf("%w: tuyalegacy ClientId and username must both be the devId", ErrBadCredentials)
	}
	secKey, ok := find(clientID)
	if !ok {
		return verdict{}, fmt.Errorf("%w: tuyalegacy %s", ErrUnknownDevice, clientID)
	}
	digest := md5.Sum([]byte(secKey))
	var want strings.Builder
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&want, "%02x", digest[i+4])
	}
	if subtle.ConstantTimeCompare([]byte(want.String()), []byte(password)) != 1 {
		return verdict{}, fmt.Errorf("%w: tuyalegacy password does not match", ErrBadCredentials)
	}
	return verdict{}, nil
}

// verifyAWS plays AWS IoT Core and a custom authorizer function: AWS checks
// the token signature with the authorizer's token-signing public key, then
// the function verifies the JWT against the issuer's JWKS and answers
// disconnectAfterInSeconds = exp - now, so the session ends at exp.
func (e *Emulator) verifyAWS(clientID, username string, tls bool, now time.Time, find secrets) (verdict, error) {
	if !tls {
		return verdict{}, fmt.Errorf("%w: aws custom authentication needs TLS", ErrBadCredentials)
	}
	_, query, ok := strings.Cut(username, "?")
	if !ok {
		return verdict{}, fmt.Errorf("%w: aws username has no query string", ErrBadCredentials)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: aws username query: %w", ErrBadCredentials, err)
	}
	name := q.Get("x-amz-customauthorizer-name")
	pemKey, ok := find("authorizers/" + name)
	if !ok {
		return verdict{}, fmt.Errorf("%w: aws authorizer %q", ErrUnknownDevice, name)
	}
	keyName, _ := find("authorizers/" + name + "/tokenKeyName")
	token := q.Get(keyName)
	sig, err := base64.StdEncoding.DecodeString(q.Get("x-amz-customauthorizer-signature"))
	if token == "" || err != nil {
		return verdict{}, fmt.Errorf("%w: aws username needs %s and a base64 x-amz-customauthorizer-signature", ErrBadCredentials, keyName)
	}
	pub, err := rsaPublicKey(pemKey)
	if err != nil {
		return verdict{}, fmt.Errorf("aws authorizer %s: %w", name, err)
	}
	h := sha256.Sum256([]byte(token))
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) != nil {
		return verdict{}, fmt.Errorf("%w: aws token signature does not verify with the authorizer's public key", ErrBadCredentials)
	}
	endpoint, _ := find("authorizers/" + name + "/endpoint")
	return e.verifyToken(clientID, token, endpoint, now, find)
}

// rsaPublicKey reads the authorizer's token-signing key: a public key, or
// the private key whose public half it is.
func rsaPublicKey(s string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("token-signing key is not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not an RSA key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("token-signing key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k, nil
	case *rsa.PrivateKey:
		return &k.PublicKey, nil
	}
	return nil, fmt.Errorf("token-signing key is %T, not RSA", key)
}
