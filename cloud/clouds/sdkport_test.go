package clouds_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestRequestsAsOfficialSDKs compares the bytes each registration sends,
// captured by the emulators, with ports of the vendors' own device SDK
// code, line by line:
//
//   - aliyun-dynamic: aliyun/iotkit-embedded src/dynamic_register/dynreg.c
//     (_calc_dynreg_sign: HMAC-SHA256 over "deviceName%sproductKey%srandom%s",
//     infra_hex2str of src/infra/infra_string.c, upper-case hex; the body
//     "productKey=%s&deviceName=%s&random=%s&sign=%s&signMethod=%s").
//   - tencent-dynamic: tencentyun/iot-device-python hub/hub.py dynregDevice
//     (request_format "{\"ProductId\":\"%s\",\"DeviceName\":\"%s\"}", the
//     sign_format "%s\n%s\n%s\n%s\n%s\n%d\n%d\n%s" over POST, host,
//     /device/register, "", hmacsha256, timestamp, nonce, sha256 hex of the
//     body, and base64 of its HMAC-SHA256 under the product secret).
//
// The random and nonce the SDKs draw are read back from the captured
// request and fed to the port.
func TestRequestsAsOfficialSDKs(t *testing.T) {
	t.Parallel()
	t.Run("aliyun-dynamic", func(t *testing.T) {
		t.Parallel()
		const pk, dn, ps = "a1pk0000001", "sensor-1", "ps-aliyun-product-secret-1"
		body, _ := registered(t, startAliyun(t), KindAliyunDynamic, map[string]string{"productKey": pk}, ps, dn)
		q, err := url.ParseQuery(string(body))
		if err != nil {
			t.Fatal(err)
		}
		random := q.Get("random")
		// Port of _calc_dynreg_sign and infra_hex2str.
		m := hmac.New(sha256.New, []byte(ps))
		fmt.Fprintf(m, "deviceName%sproductKey%srandom%s", dn, pk, random)
		const zEncode = "0123456789ABCDEF"
		var sign strings.Builder
		for _, b := range m.Sum(nil) {
			sign.WriteByte(zEncode[b>>4&0xf])
			sign.WriteByte(zEncode[b&0xf])
		}
		want := fmt.Sprintf("productKey=%s&deviceName=%s&random=%s&sign=%s&signMethod=%s", pk, dn, random, sign.String(), "hmacsha256")
		if string(body) != want {
			t.Fatalf("body\n%s\nwant (iotkit-embedded dynreg.c)\n%s", body, want)
		}
	})
	t.Run("tencent-dynamic", func(t *testing.T) {
		t.Parallel()
		e := startTencent(t)
		const pid, dn, ps = "ABCDEFGHIJ", "pump-7", "tc-product-secret-0123456789"
		body, h := registered(t, e, KindTencentDynamic, map[string]string{"productId": pid}, ps, dn)
		requestText := fmt.Sprintf("{\"ProductId\":\"%s\",\"DeviceName\":\"%s\"}", pid, dn)
		if string(body) != requestText {
			t.Fatalf("body %s, want (hub.py dynregDevice) %s", body, requestText)
		}
		var ts, nonce int64
		if _, err := fmt.Sscan(h.Get("X-TC-Timestamp"), &ts); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscan(h.Get("X-TC-Nonce"), &nonce); err != nil || nonce < 0 || nonce >= 2147483647 {
			t.Fatalf("nonce %q outside random.randrange(2147483647)", h.Get("X-TC-Nonce"))
		}
		sum := sha256.Sum256([]byte(requestText))
		host := e.Addr()
		content := fmt.Sprintf("%s\n%s\n%s\n%s\n%s\n%d\n%d\n%s", "POST", host, "/device/register", "", "hmacsha256", ts, nonce, hex.EncodeToString(sum[:]))
		m := hmac.New(sha256.New, []byte(ps))
		m.Write([]byte(content))
		want := base64.StdEncoding.EncodeToString(m.Sum(nil))
		if got := h.Get("X-TC-Signature"); got != want {
			t.Fatalf("X-TC-Signature %s, want (hub.py dynregDevice) %s", got, want)
		}
		for k, v := range map[string]string{"Content-Type": "application/json; charset=utf-8", "X-TC-Algorithm": "hmacsha256"} {
			if h.Get(k) != v {
				t.Fatalf("%s %q, want %q", k, h.Get(k), v)
			}
		}
	})
}

// dynReg is what registered needs of a dynamic registration emulator.
type dynReg interface {
	Client() *http.Client
	Addr() string
	LastRequest() ([]byte, http.Header)
}

// registered registers device by kind at the emulator e (params.host is
// e's address), failing t unless it succeeds, and returns the request e
// received.
func registered(t *testing.T, e dynReg, kind string, params map[string]string, groupSecret, device string) ([]byte, http.Header) {
	t.Helper()
	params["host"] = e.Addr()
	if _, err := clientFor(e.Client()).Register(ctxT(t, 30*time.Second), Request{Kind: kind, Params: params, GroupSecret: groupSecret, DeviceID: device}); err != nil {
		t.Fatal(err)
	}
	return e.LastRequest()
}
