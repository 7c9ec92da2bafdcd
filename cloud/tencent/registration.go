package tencent

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/credsign/credsign/cloud/registration"
)

// Tencent Cloud IoT Hub / IoT Explorer dynamic registration with the
// product secret. Sources: Tencent Cloud docs "Dynamic Registration API
// Description" (动态注册接口说明; tencentcloud.com/document/product/1105/41820,
// cloud.tencent.com/document/product/1081/47612) and "Signature Algorithm"
// (签名方法; tencentcloud.com/document/product/1105/41501):
//
//	POST https://ap-guangzhou.gateway.tencentdevices.com/device/register
//	Content-Type: application/json; body {"ProductId": …, "DeviceName": …}
//	X-TC-Algorithm: hmacsha256, X-TC-Timestamp: Unix seconds, X-TC-Nonce: random number
//	StringToSign = "POST\n" + host + "\n" + "/device/register\n" + "\n" (empty query)
//	               + algorithm + "\n" + timestamp + "\n" + nonce + "\n" + lowerhex(SHA256(body))
//	X-TC-Signature = b64(HMAC-SHA256(productSecret, StringToSign))
//	→ {"Response": {"Len": n, "Payload": b64(AES-128-CBC(…)), "RequestId": …}}
//
// The payload is the JSON {"encryptionType": 2, "psk": …} encrypted with
// AES-128-CBC, key the first 16 characters of the product secret, IV sixteen
// "0" characters; Len is the length of the JSON (the cipher text is zero
// padded). encryptionType 1 (certificate products) carries a certificate
// and key instead of a psk, which credsign does not take.
// The older C SDK endpoint /register/dev (form signature over sorted
// params) is not used.

// TencentHost is the default host of tencent-dynamic.
const TencentHost = "ap-guangzhou.gateway.tencentdevices.com"

// tencentSign is X-TC-Signature.
func tencentSign(productSecret, host, algorithm, timestamp, nonce string, body []byte) string {
	sum := sha256.Sum256(body)
	toSign := "POST\n" + host + "\n/device/register\n\n" + algorithm + "\n" + timestamp + "\n" + nonce + "\n" + hex.EncodeToString(sum[:])
	m := hmac.New(sha256.New, []byte(productSecret))
	m.Write([]byte(toSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// tencentAnswer is the JSON answer of /device/register.
type tencentAnswer struct {
	Response *struct {
		Len     int    `json:"Len"`
		Payload string `json:"Payload"`
		Error   *struct {
			Code string `json:"Code"`
		} `json:"Error"`
	} `json:"Response"`
}

// parseTencent decodes an answer and decrypts its payload: the psk, or the
// error code the cloud answered.
func parseTencent(b []byte, productSecret string) (psk, code string, err error) {
	var a tencentAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.Response == nil {
		return "", "", fmt.Errorf("answer is not a Tencent Response")
	}
	if e := a.Response.Error; e != nil {
		return "", registration.OrText(registration.Safe(e.Code), "unknown"), nil
	}
	plain, err := tencentDecrypt(productSecret, a.Response.Payload, a.Response.Len)
	if err != nil {
		return "", "", err
	}
	var p struct {
		EncryptionType int    `json:"encryptionType"`
		PSK            string `json:"psk"`
	}
	if err := json.Unmarshal(plain, &p); err != nil {
		return "", "", fmt.Errorf("payload does not decrypt to JSON (wrong product secret?)")
	}
	if p.PSK == "" {
		if p.EncryptionType == 1 {
			return "", "", fmt.Errorf("%w: the product uses certificate authentication; credsign needs key (psk) authentication", registration.ErrRefused)
		}
		return "", "", fmt.Errorf("payload has no psk")
	}
	return p.PSK, "", nil
}

// tencentDecrypt reverses the payload encryption: base64, AES-128-CBC with
// the first 16 bytes of the product secret and an IV of sixteen "0", then
// the first n bytes (zero padding; trailing zeros are trimmed when n is 0).
func tencentDecrypt(productSecret, payload string, n int) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(payload)
	if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("payload is not base64 AES-CBC blocks")
	}
	if len(productSecret) < aes.BlockSize {
		return nil, fmt.Errorf("product secret shorter than 16 characters")
	}
	block, err := aes.NewCipher([]byte(productSecret[:aes.BlockSize]))
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, []byte(strings.Repeat("0", aes.BlockSize))).CryptBlocks(plain, ct)
	switch {
	case n > 0 && n <= len(plain):
		return plain[:n], nil
	case n == 0:
		return bytes.TrimRight(plain, "\x00"), nil
	}
	return nil, fmt.Errorf("payload Len %d out of range", n)
}

func registerTencent(ctx context.Context, c *registration.Client, r registration.Request) (registration.Result, error) {
	pid := r.Params["productId"]
	dn := registration.Param(r.Params, "deviceName", r.DeviceID)
	host := registration.Param(r.Params, "host", TencentHost)
	what := "tencent-dynamic " + host
	if dn == "" {
		return registration.Result{}, fmt.Errorf("%s: %w: no device name (device id or params.deviceName)", what, registration.ErrInvalid)
	}
	u := "https://" + host + "/device/register"
	// ProductId then DeviceName, as tencentyun/iot-device-python hub/hub.py
	// dynregDevice writes it ("{\"ProductId\":\"%s\",\"DeviceName\":\"%s\"}"):
	// the signature hashes these bytes.
	body, _ := json.Marshal(struct {
		ProductID  string `json:"ProductId"`
		DeviceName string `json:"DeviceName"`
	}{pid, dn})
	a, err := c.Send(ctx, what+" register "+pid+"/"+dn, func() (*http.Request, error) {
		var nb [4]byte
		if _, err := io.ReadFull(c.Random(), nb[:]); err != nil {
			return nil, fmt.Errorf("random: %w", err)
		}
		nonce := strconv.FormatUint(uint64(binary.BigEndian.Uint32(nb[:])>>1), 10)
		ts := strconv.FormatInt(c.Clock().Unix(), 10)
		req, err := registration.NewRequest(http.MethodPost, u, "application/json; charset=utf-8", body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-TC-Algorithm", "hmacsha256")
		req.Header.Set("X-TC-Timestamp", ts)
		req.Header.Set("X-TC-Nonce", nonce)
		req.Header.Set("X-TC-Signature", tencentSign(r.GroupSecret, req.URL.Host, "hmacsha256", ts, nonce, body))
		return req, nil
	})
	if err != nil {
		return registration.Result{}, err
	}
	psk, code, perr := parseTencent(a.Body, r.GroupSecret)
	switch {
	case a.Status >= 400 && a.Status < 500:
		return registration.Result{}, fmt.Errorf("%s: device %s/%s: %w: HTTP %d, code %s", what, pid, dn, registration.ErrRefused, a.Status, registration.OrText(code, "none"))
	case a.Status != http.StatusOK:
		return registration.Result{}, fmt.Errorf("%s: device %s/%s: %w: unexpected HTTP %d", what, pid, dn, registration.ErrUnavailable, a.Status)
	case code != "":
		return registration.Result{}, fmt.Errorf("%s: device %s/%s: %w: code %s", what, pid, dn, registration.ErrRefused, code)
	case errors.Is(perr, registration.ErrRefused):
		return registration.Result{}, fmt.Errorf("%s: device %s/%s: %w", what, pid, dn, perr)
	case perr != nil:
		return registration.Result{}, fmt.Errorf("%s: device %s/%s: %w: %w", what, pid, dn, registration.ErrUnavailable, perr)
	}
	return registration.Result{Params: map[string]any{"productId": pid, "deviceName": dn}, Secret: psk}, nil
}

// KindDynamic is the registration kind of Tencent Cloud IoT dynamic
// registration with the product secret. Params: productId (required),
// host (default ap-guangzhou.gateway.tencentdevices.com), deviceName
// (default the device id). The group secret is the product secret, at
// least 16 characters (its first 16 are the AES key of the answer).
const KindDynamic = "tencent-dynamic"

// RegistrationKinds implements cloud.Registerer.
func (Backend) RegistrationKinds() []registration.Kind {
	return []registration.Kind{{Name: KindDynamic, Required: []string{"productId"}, Optional: []string{"host", "deviceName"},
		// ap-guangzhou.gateway.tencentdevices.com and the other regions'.
		Hosts: []string{"*.tencentdevices.com"}, Host: func(p map[string]string) string { return registration.Param(p, "host", TencentHost) },
		CheckSecret: checkProductSecret, Register: registerTencent}}
}

// checkProductSecret says why a product secret is too short to hold the
// answer's AES key.
func checkProductSecret(secret string) string {
	if len(secret) >= 16 {
		return ""
	}
	return "the product secret must have at least 16 characters"
}
