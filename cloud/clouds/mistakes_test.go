package clouds

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/url"
	"testing"
	"time"
)

// hmacSum is the HMAC of msg under key, computed with crypto/hmac.
func hmacSum(newHash func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(newHash, key)
	m.Write(msg)
	return m.Sum(nil)
}

func hmacSHA256(key, msg []byte) []byte { return hmacSum(sha256.New, key, msg) }

// mistake is one classic hand-written mistake in a cloud's recipe.
type mistake struct {
	name  string
	got   string // credsign's answer
	right string // the recipe of docs/clouds.md, computed here
	wrong string // the classic mistake
}

// runMistakes checks each mistake: it must give another answer than the
// recipe (else the case shows nothing), and credsign must give the recipe's.
func runMistakes(t *testing.T, tests []mistake) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.right == tt.wrong {
				t.Fatalf("the mistake gives the same answer; the test shows nothing")
			}
			if tt.got != tt.right {
				t.Errorf("credsign gave %q, want %q", tt.got, tt.right)
			}
		})
	}
}

// TestClassicMistakes shows, for each cloud, that the classic hand-written
// mistake gives a different answer from credsign's, while the recipe of
// docs/clouds.md gives the same one: a mis-implemented recipe would fail here.
func TestClassicMistakes(t *testing.T) {
	aliyunNow := time.UnixMilli(1539421321846)
	aliyun := mustSign(t, Request{Cloud: "aliyun", Params: map[string]any{"productKey": "a14Xib5kdYd", "deviceName": "light1983432", "clientId": "SN1928339", "signMethod": "hmacsha1"},
		Secret: "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq", Now: aliyunNow})
	sha1Hex := func(msg string) string {
		return hex.EncodeToString(hmacSum(sha1.New, []byte("oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq"), []byte(msg)))
	}

	const psk = "c2VjcmV0LXBzay1ieXRlcw==" // "secret-psk-bytes"
	tencent := mustSign(t, Request{Cloud: "tencent", Params: map[string]any{"productId": "P1", "deviceName": "d", "connId": "abcde"}, Secret: psk, Now: time.Unix(1700000000, 0)})
	pskBytes, _ := base64.StdEncoding.DecodeString(psk)

	huawei := mustSign(t, Request{Cloud: "huawei", Params: map[string]any{"deviceId": "d"}, Secret: "12345678", Now: time.Date(2025, 4, 14, 1, 0, 0, 0, time.UTC)})

	const azKey = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	azNow := time.Unix(1578938092, 0)
	azure := mustSign(t, Request{Cloud: "azure", Params: map[string]any{"hubHost": "myiothub.azure-devices.net", "deviceId": "my_device"}, Secret: azKey, Now: azNow})
	azKeyBytes, _ := base64.StdEncoding.DecodeString(azKey)
	sr := url.QueryEscape("myiothub.azure-devices.net/devices/my_device")
	azPass := func(sig []byte, se string) string {
		return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig)) + "&se=" + se
	}

	tests := []mistake{
		{"aliyun: timestamp in seconds", aliyun.Password,
			sha1Hex("clientIdSN1928339deviceNamelight1983432productKeya14Xib5kdYdtimestamp1539421321846"),
			sha1Hex("clientIdSN1928339deviceNamelight1983432productKeya14Xib5kdYdtimestamp1539421321")},
		{"aliyun: whole ClientId signed", aliyun.Password,
			sha1Hex("clientIdSN1928339deviceNamelight1983432productKeya14Xib5kdYdtimestamp1539421321846"),
			sha1Hex("clientIdSN1928339|securemode=2,signmethod=hmacsha1,timestamp=1539421321846|deviceNamelight1983432productKeya14Xib5kdYdtimestamp1539421321846")},
		{"aliyun: timestamp left out of content", aliyun.Password,
			sha1Hex("clientIdSN1928339deviceNamelight1983432productKeya14Xib5kdYdtimestamp1539421321846"),
			sha1Hex("clientIdSN1928339deviceNamelight1983432productKeya14Xib5kdYd")},
		{"tencent: PSK not base64-decoded", tencent.Password,
			hex.EncodeToString(hmacSHA256(pskBytes, []byte(tencent.Username))) + ";hmacsha256",
			hex.EncodeToString(hmacSHA256([]byte(psk), []byte(tencent.Username))) + ";hmacsha256"},
		{"tencent: expiry in milliseconds", tencent.Username, "P1d;12010126;abcde;1700003600", "P1d;12010126;abcde;1700003600000"},
		{"huawei: keyed by the secret (secret and timestamp swapped)", huawei.Password,
			hex.EncodeToString(hmacSHA256([]byte("2025041401"), []byte("12345678"))),
			hex.EncodeToString(hmacSHA256([]byte("12345678"), []byte("2025041401")))},
		{"huawei: local time (UTC+8) instead of UTC", huawei.Password,
			hex.EncodeToString(hmacSHA256([]byte("2025041401"), []byte("12345678"))),
			hex.EncodeToString(hmacSHA256([]byte("2025041409"), []byte("12345678")))},
		{"azure: key not base64-decoded", azure.Password,
			azPass(hmacSHA256(azKeyBytes, []byte(sr+"\n1578941692")), "1578941692"),
			azPass(hmacSHA256([]byte(azKey), []byte(sr+"\n1578941692")), "1578941692")},
		{"azure: se in milliseconds", azure.Password,
			azPass(hmacSHA256(azKeyBytes, []byte(sr+"\n1578941692")), "1578941692"),
			azPass(hmacSHA256(azKeyBytes, []byte(sr+"\n1578941692000")), "1578941692000")},
		{"azure: sig not URL-encoded", azure.Password,
			azPass(hmacSHA256(azKeyBytes, []byte(sr+"\n1578941692")), "1578941692"),
			"SharedAccessSignature sr=" + sr + "&sig=" + base64.StdEncoding.EncodeToString(hmacSHA256(azKeyBytes, []byte(sr+"\n1578941692"))) + "&se=1578941692"},
		{"azure: raw resource signed instead of sr", azure.Password,
			azPass(hmacSHA256(azKeyBytes, []byte(sr+"\n1578941692")), "1578941692"),
			azPass(hmacSHA256(azKeyBytes, []byte("myiothub.azure-devices.net/devices/my_device\n1578941692")), "1578941692")},
	}
	runMistakes(t, tests)
}
