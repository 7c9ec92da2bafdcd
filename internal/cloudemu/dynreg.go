package cloudemu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// dynReg is the device book both dynamic-registration emulators keep:
// product secrets, and the devices created in the console beforehand
// ("pre-registration") with the secret the cloud hands out for each.
type dynReg struct {
	httpsEmu
	mu            sync.Mutex
	products      map[string]string
	devices       map[string]string
	registrations int
	lastBody      []byte
	lastHeader    http.Header
}

// LastRequest returns the body and headers of the last request the
// emulator read, as sent, so that tests can compare them byte for byte
// with what the vendor's SDK sends.
func (d *dynReg) LastRequest() ([]byte, http.Header) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.lastBody), d.lastHeader.Clone()
}

func (d *dynReg) record(body []byte, h http.Header) {
	d.mu.Lock()
	d.lastBody, d.lastHeader = bytes.Clone(body), h.Clone()
	d.mu.Unlock()
}

// AddProduct adds a product with dynamic registration switched on.
func (d *dynReg) AddProduct(product, productSecret string) {
	d.mu.Lock()
	d.products[product] = productSecret
	d.mu.Unlock()
}

// AddDevice creates a device in a product, as the console does before a
// pre-registration, with the secret the cloud issues for it.
func (d *dynReg) AddDevice(product, deviceName, deviceSecret string) {
	d.mu.Lock()
	d.devices[product+"/"+deviceName] = deviceSecret
	d.mu.Unlock()
}

// Registrations counts the registrations the emulator accepted.
func (d *dynReg) Registrations() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.registrations
}

func (d *dynReg) lookup(product, deviceName string) (productSecret, deviceSecret string, okProduct, okDevice bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	productSecret, okProduct = d.products[product]
	deviceSecret, okDevice = d.devices[product+"/"+deviceName]
	return
}

func (d *dynReg) accepted() {
	d.mu.Lock()
	d.registrations++
	d.mu.Unlock()
}

// AliyunDynReg emulates Alibaba Cloud IoT Platform's HTTPS dynamic
// registration of directly connected devices, "one secret per product"
// with pre-registration (一型一密预注册), written from Alibaba Cloud's docs
// "HTTPS-based dynamic registration of directly connected devices" (直连设备
// 使用HTTPS动态注册, help.aliyun.com/document_detail/89298 and the Java sample
// of help.aliyun.com/en/iot/use-cases/https-based-dynamic-registration),
// independently of package registration:
//
//	POST /auth/register/device   (host iot-auth.{regionId}.aliyuncs.com)
//	Content-Type: application/x-www-form-urlencoded
//	productKey, deviceName, random, sign, signMethod
//
// sign = hex(HMAC_signMethod(productSecret, the parameters other than sign
// and signMethod sorted by name, each written name+value)); signMethod is
// hmacmd5 (the default), hmacsha1 or hmacsha256. The answer is
// {"code":200,"data":{"productKey","deviceName","deviceSecret"},"message":"success"}.
// A bad signature is answered 401 with a non-200 code; the error codes
// are the emulator's, not Alibaba's.
type AliyunDynReg struct{ dynReg }

// AliyunDynRegOptions configures an AliyunDynReg.
type AliyunDynRegOptions struct {
	// CA signs the server certificate; generated when nil.
	CA *TestCA
}

// StartAliyunDynReg starts the emulator on 127.0.0.1 with TLS.
func StartAliyunDynReg(opts AliyunDynRegOptions) (*AliyunDynReg, error) {
	a := &AliyunDynReg{dynReg{products: map[string]string{}, devices: map[string]string{}}}
	if err := a.start(opts.CA, nil, http.HandlerFunc(a.serve)); err != nil {
		return nil, err
	}
	return a, nil
}

func aliyunAnswer(w http.ResponseWriter, status, code int, msg string, data any) {
	body := map[string]any{"code": code, "message": msg}
	if data != nil {
		body["data"] = data
	}
	writeJSON(w, status, body)
}

func (a *AliyunDynReg) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/auth/register/device" || r.Method != http.MethodPost {
		aliyunAnswer(w, http.StatusNotFound, 404, "not found", nil)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		aliyunAnswer(w, http.StatusBadRequest, 460, "content type must be application/x-www-form-urlencoded", nil)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
	if err != nil {
		aliyunAnswer(w, http.StatusBadRequest, 460, "bad form", nil)
		return
	}
	a.record(raw, r.Header)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if err := r.ParseForm(); err != nil {
		aliyunAnswer(w, http.StatusBadRequest, 460, "bad form", nil)
		return
	}
	f := r.PostForm
	pk, dn, random, sign := f.Get("productKey"), f.Get("deviceName"), f.Get("random"), f.Get("sign")
	if pk == "" || dn == "" || random == "" || sign == "" {
		aliyunAnswer(w, http.StatusBadRequest, 460, "productKey, deviceName, random and sign are required", nil)
		return
	}
	method := strings.ToLower(f.Get("signMethod"))
	if method == "" {
		method = "hmacmd5"
	}
	h, ok := map[string]func() hash.Hash{"hmacmd5": md5.New, "hmacsha1": sha1.New, "hmacsha256": sha256.New}[method]
	if !ok {
		aliyunAnswer(w, http.StatusBadRequest, 460, "unknown signMethod", nil)
		return
	}
	productSecret, deviceSecret, okP, okD := a.lookup(pk, dn)
	if !okP {
		aliyunAnswer(w, http.StatusUnauthorized, 6250, "product not found or dynamic registration off", nil)
		return
	}
	var names []string
	for k := range f {
		if k != "sign" && k != "signMethod" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var content strings.Builder
	for _, k := range names {
		content.WriteString(k + f.Get(k))
	}
	if !equalFold(hmacHex(h, []byte(productSecret), []byte(content.String())), sign) {
		aliyunAnswer(w, http.StatusUnauthorized, 6251, "sign check failed", nil)
		return
	}
	if !okD {
		aliyunAnswer(w, http.StatusNotFound, 6252, "device not found (pre-registration needs the device created first)", nil)
		return
	}
	a.accepted()
	aliyunAnswer(w, http.StatusOK, 200, "success", map[string]string{"productKey": pk, "deviceName": dn, "deviceSecret": deviceSecret})
}

// TencentDynReg emulates the dynamic registration API of Tencent Cloud IoT
// Hub and IoT Explorer, written from Tencent Cloud's docs "Dynamic
// Registration API Description" (动态注册接口说明,
// cloud.tencent.com/document/product/1081/47612 and
// tencentcloud.com/document/product/1105/41820) and "Signature Algorithm"
// (签名方法, tencentcloud.com/document/product/1105/41501), independently of
// package registration:
//
//	POST /device/register   (host ap-guangzhou.gateway.tencentdevices.com)
//	Content-Type: application/json; body {"ProductId","DeviceName"}
//	X-TC-Algorithm: hmacsha256 | hmacsha1, X-TC-Timestamp, X-TC-Nonce, X-TC-Signature
//
// StringToSign = "POST\n" + host + "\n/device/register\n\n" + algorithm + "\n"
// + timestamp + "\n" + nonce + "\n" + lowerhex(SHA256(body)); X-TC-Signature
// = b64(HMAC(productSecret, StringToSign)). The answer is
// {"Response":{"Len":n,"Payload":b64(AES-128-CBC(key = productSecret[:16],
// iv = sixteen "0" characters, JSON {"encryptionType":2,"psk":…} zero-padded)),
// "RequestId":…}}, Len being the length of the JSON. The emulator refuses a
// timestamp more than MaxSkew from its clock and answers 401 to a bad
// signature; its error codes are its own.
type TencentDynReg struct {
	dynReg
	opts TencentDynRegOptions
}

// TencentDynRegOptions configures a TencentDynReg.
type TencentDynRegOptions struct {
	// CA signs the server certificate; generated when nil.
	CA *TestCA
	// Now is the emulator's clock; default time.Now.
	Now func() time.Time
	// MaxSkew is how far X-TC-Timestamp may be from the clock; default 5m.
	MaxSkew time.Duration
}

// StartTencentDynReg starts the emulator on 127.0.0.1 with TLS.
func StartTencentDynReg(opts TencentDynRegOptions) (*TencentDynReg, error) {
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = 5 * time.Minute
	}
	t := &TencentDynReg{dynReg: dynReg{products: map[string]string{}, devices: map[string]string{}}, opts: opts}
	if err := t.start(opts.CA, opts.Now, http.HandlerFunc(t.serve)); err != nil {
		return nil, err
	}
	return t, nil
}

func tencentError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"Response": map[string]any{
		"Error": map[string]string{"Code": code, "Message": msg}, "RequestId": randomID(16),
	}})
}

func (t *TencentDynReg) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/device/register" || r.Method != http.MethodPost {
		tencentError(w, http.StatusNotFound, "NotFound", "no such API")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		tencentError(w, http.StatusBadRequest, "InvalidParameter", "only application/json")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		tencentError(w, http.StatusBadRequest, "InvalidParameter", "unreadable body")
		return
	}
	t.record(body, r.Header)
	var req struct{ ProductId, DeviceName string }
	if json.Unmarshal(body, &req) != nil || req.ProductId == "" || req.DeviceName == "" {
		tencentError(w, http.StatusBadRequest, "InvalidParameter", "ProductId and DeviceName are required")
		return
	}
	alg, ts, nonce, sig := r.Header.Get("X-TC-Algorithm"), r.Header.Get("X-TC-Timestamp"), r.Header.Get("X-TC-Nonce"), r.Header.Get("X-TC-Signature")
	h, ok := map[string]func() hash.Hash{"hmacsha256": sha256.New, "hmacsha1": sha1.New}[strings.ToLower(alg)]
	if !ok || ts == "" || nonce == "" || sig == "" {
		tencentError(w, http.StatusBadRequest, "InvalidParameter", "X-TC-Algorithm, X-TC-Timestamp, X-TC-Nonce and X-TC-Signature are required")
		return
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		tencentError(w, http.StatusBadRequest, "InvalidParameter", "X-TC-Timestamp is not Unix seconds")
		return
	}
	if d := t.now().Sub(time.Unix(sec, 0)); d > t.opts.MaxSkew || d < -t.opts.MaxSkew {
		tencentError(w, http.StatusUnauthorized, "AuthFailure.TimestampOutOfRange", "timestamp too far from the server's clock")
		return
	}
	productSecret, psk, okP, okD := t.lookup(req.ProductId, req.DeviceName)
	if !okP || len(productSecret) < 16 {
		tencentError(w, http.StatusUnauthorized, "ResourceNotFound.ProductNotExist", "product not found or dynamic registration off")
		return
	}
	sum := sha256.Sum256(body)
	toSign := strings.Join([]string{"POST", r.Host, "/device/register", "", alg, ts, nonce, hex.EncodeToString(sum[:])}, "\n")
	m := hmac.New(h, []byte(productSecret))
	m.Write([]byte(toSign))
	if subtle.ConstantTimeCompare([]byte(base64.StdEncoding.EncodeToString(m.Sum(nil))), []byte(sig)) != 1 {
		tencentError(w, http.StatusUnauthorized, "AuthFailure.SignatureFailure", "signature check failed")
		return
	}
	if !okD {
		tencentError(w, http.StatusNotFound, "ResourceNotFound.DeviceNotExist", "Pre create mode: device not exists")
		return
	}
	plain, _ := json.Marshal(map[string]any{"encryptionType": 2, "psk": psk})
	payload, err := tencentEncrypt(productSecret, plain)
	if err != nil {
		tencentError(w, http.StatusInternalServerError, "InternalError", "encryption failed")
		return
	}
	t.accepted()
	writeJSON(w, http.StatusOK, map[string]any{"Response": map[string]any{"Len": len(plain), "Payload": payload, "RequestId": randomID(16)}})
}

// tencentEncrypt is the payload encryption of the dynamic registration
// answer: AES-128-CBC under the first 16 bytes of the product secret, IV of
// sixteen "0" characters, zero padding, then standard base64.
func tencentEncrypt(productSecret string, plain []byte) (string, error) {
	block, err := aes.NewCipher([]byte(productSecret[:16]))
	if err != nil {
		return "", fmt.Errorf("aes: %w", err)
	}
	padded := append(append([]byte(nil), plain...), bytes.Repeat([]byte{0}, (aes.BlockSize-len(plain)%aes.BlockSize)%aes.BlockSize)...)
	out := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, []byte(strings.Repeat("0", aes.BlockSize))).CryptBlocks(out, padded)
	return base64.StdEncoding.EncodeToString(out), nil
}
