package tencent

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
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
