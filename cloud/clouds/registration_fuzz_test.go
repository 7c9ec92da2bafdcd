package registration

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// encryptTencent is the answer's encryption as Tencent documents it
// (AES-128-CBC, key = productSecret[:16], IV = "0"×16, zero padding), for
// seeds and round trips.
func encryptTencent(t testing.TB, secret string, plain []byte) string {
	block, err := aes.NewCipher([]byte(secret[:16]))
	if err != nil {
		t.Fatal(err)
	}
	p := append(append([]byte(nil), plain...), bytes.Repeat([]byte{0}, (16-len(plain)%16)%16)...)
	out := make([]byte, len(p))
	cipher.NewCBCEncrypter(block, []byte(strings.Repeat("0", 16))).CryptBlocks(out, p)
	return base64.StdEncoding.EncodeToString(out)
}

func tencentBody(t testing.TB, secret string, plain string, n int) []byte {
	b, _ := json.Marshal(map[string]any{"Response": map[string]any{"Len": n, "Payload": encryptTencent(t, secret, []byte(plain)), "RequestId": "r"}})
	return b
}

func TestTencentDecryptRoundTrip(t *testing.T) {
	const secret = "Y3QY9pWCMCmlbYDPZ6YkvW4O"
	for _, plain := range []string{`{"encryptionType":2,"psk":"cHNr"}`, `{"encryptionType":2,"psk":"MTIzNDU2Nzg5MGFiY2RlZg=="}`, `{"psk":"exactly-32-bytes-of-json-text"}`} {
		for _, n := range []int{len(plain), 0} {
			psk, code, err := parseTencent(tencentBody(t, secret, plain, n), secret)
			var want struct{ PSK string }
			_ = json.Unmarshal([]byte(plain), &want)
			if err != nil || code != "" || psk != want.PSK {
				t.Errorf("Len %d, %s: psk %q code %q err %v", n, plain, psk, code, err)
			}
		}
	}
	if _, _, err := parseTencent(tencentBody(t, secret, `{"encryptionType":1,"clientCert":"x"}`, 0), secret); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("certificate product: %v", err)
	}
	if _, _, err := parseTencent(tencentBody(t, secret, `{"encryptionType":2,"psk":"cHNr"}`, 0), "ZZZZZZZZZZZZZZZZZZZZ"); err == nil {
		t.Error("decrypted with the wrong product secret")
	}
}

func FuzzParseDPSOperation(f *testing.F) {
	f.Add([]byte(`{"operationId":"4.abc","status":"assigning"}`))
	f.Add([]byte(`{"operationId":"4.abc","status":"assigned","registrationState":{"assignedHub":"h.azure-devices.net","deviceId":"d","errorCode":400209}}`))
	f.Add([]byte(`{"status":"failed","registrationState":{"errorCode":"x"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := parseDPSOperation(b)
		if err == nil && op.Status == "" {
			t.Fatal("accepted an operation without a status")
		}
		if err != nil && op.Status != "" {
			t.Fatal("error with a status")
		}
	})
}

func FuzzParseAliyun(f *testing.F) {
	f.Add([]byte(`{"code":200,"data":{"productKey":"pk","deviceName":"d","deviceSecret":"s"},"message":"success"}`))
	f.Add([]byte(`{"code":6251,"message":"sign check failed"}`))
	f.Add([]byte(`{"code":"200"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		secret, code, err := parseAliyun(b)
		if secret != "" && (code != "200" || err != nil) {
			t.Fatalf("secret with code %q, err %v", code, err)
		}
		if code != "" && code != safe(code) {
			t.Fatalf("code %q not safe for an error", code)
		}
	})
}

func FuzzParseTencent(f *testing.F) {
	const secret = "Y3QY9pWCMCmlbYDPZ6YkvW4O"
	f.Add(tencentBody(f, secret, `{"encryptionType":2,"psk":"cHNr"}`, 33), secret)
	f.Add([]byte(`{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"x"},"RequestId":"r"}}`), secret)
	f.Add([]byte(`{"Response":{"Len":99,"Payload":"AAAAAAAAAAAAAAAAAAAAAA=="}}`), "short")
	f.Fuzz(func(t *testing.T, b []byte, secret string) {
		psk, code, err := parseTencent(b, secret)
		if psk != "" && (code != "" || err != nil) {
			t.Fatalf("psk with code %q, err %v", code, err)
		}
		if err != nil && len(secret) >= 8 && strings.Contains(err.Error(), secret) { // shorter ones are in any text
			t.Fatalf("error holds the secret: %v", err)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-5", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999", ""} {
		f.Add(s)
	}
	now := time.Date(2015, 10, 21, 7, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, h string) {
		d, ok := ParseRetryAfter(h, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", h, d, ok)
		}
	})
}

func FuzzSafe(f *testing.F) {
	f.Add("401002")
	f.Add("SharedAccessSignature sr=a%2Fb&sig=abc%3D")
	f.Add("0123456789abcdef0123456789abcdef")
	f.Fuzz(func(t *testing.T, s string) {
		out := safe(s)
		if out == "(withheld)" || out == "" {
			return
		}
		if out != s || strings.ContainsAny(out, "=%+/ ") || hexRunRE.MatchString(out) || len(out) > 48 {
			t.Fatalf("safe(%q) = %q", s, out)
		}
	})
}

// Tencent Cloud docs, "Dynamic Registration API Description" (动态注册接口说明,
// tencentcloud.com/document/product/1105/41820), "Payload data parsing
// sample": product secret hzvf5LF9S0isvBhDSauWMaIk, this payload decrypts to
// {"encryptionType":2,"psk":"lDZ6Uqt+I9E0wW7rvDUs7Q=="} (53 bytes, the Len
// of the docs' response example).
func TestTencentPayloadVendorVector(t *testing.T) {
	const payload = "s6FB3a1BA/YYbcmSE12XpeDVmQNDcf1QgVD141RRbmmAnFwQfp1ECAu5O016mCOvYlJJ6V59yM4OqQSiWphfTg=="
	for _, n := range []int{53, 0} {
		body, _ := json.Marshal(map[string]any{"Response": map[string]any{"Len": n, "Payload": payload, "RequestId": "r"}})
		psk, code, err := parseTencent(body, "hzvf5LF9S0isvBhDSauWMaIk")
		if err != nil || code != "" || psk != "lDZ6Uqt+I9E0wW7rvDUs7Q==" {
			t.Fatalf("Len %d: psk %q, code %q, err %v", n, psk, code, err)
		}
	}
}
