package clouds

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"testing"
	"time"
)

// TestClassicMistakesMoreClouds does for onenet, baidu and tuya what
// TestClassicMistakes does for the first four: the recipe of
// docs/clouds.md, computed here with the standard library, gives
// credsign's answer, and each classic hand-written mistake another one.
func TestClassicMistakesMoreClouds(t *testing.T) {
	// OneNET: the published vector's inputs.
	const onKey = "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw="
	onKeyBytes, _ := base64.StdEncoding.DecodeString(onKey)
	onenet := mustSign(t, Request{Cloud: "onenet", Params: map[string]any{"productId": "123123", "deviceName": "d", "signMethod": "sha1", "keyScope": "product"},
		Secret: onKey, Now: time.Unix(1537255523-3600, 0)})
	onSign := func(key []byte, msg string) string {
		return base64.StdEncoding.EncodeToString(hmacSum(sha1.New, key, []byte(msg)))
	}
	onToken := func(res, sign string) string {
		return "version=2018-10-31&res=" + res + "&et=1537255523&method=sha1&sign=" + sign
	}
	const onMsg = "1537255523\nsha1\nproducts/123123\n2018-10-31"

	// Baidu: the published vector's inputs.
	baidu := mustSign(t, Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"}, Secret: "ImSeCrEt0I1M2jkl", Now: time.Unix(1583826857, 0)})
	md5Hex := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	hmacMD5 := func(key, msg string) string { return hex.EncodeToString(hmacSum(md5.New, []byte(key), []byte(msg))) }

	// Tuya: the published vector's inputs.
	tuya := mustSign(t, Request{Cloud: "tuya", Params: map[string]any{"deviceId": "6c95875d0f5ba69607nzfl"}, Secret: "fb803786602df760", Now: time.Unix(1700000000, 0)})
	tuyaMAC := func(key, msg string) string { return hex.EncodeToString(hmacSHA256([]byte(key), []byte(msg))) }
	const tuyaContent = "deviceId=6c95875d0f5ba69607nzfl,timestamp=1700000000,secureMode=1,accessType=1"

	tests := []mistake{
		{"onenet: key not base64-decoded", onenet.Password,
			onToken("products%2F123123", url.QueryEscape(onSign(onKeyBytes, onMsg))),
			onToken("products%2F123123", url.QueryEscape(onSign([]byte(onKey), onMsg)))},
		{"onenet: sign not URL-encoded", onenet.Password,
			onToken("products%2F123123", url.QueryEscape(onSign(onKeyBytes, onMsg))),
			onToken("products%2F123123", onSign(onKeyBytes, onMsg))},
		{"onenet: res not URL-encoded", onenet.Password,
			onToken("products%2F123123", url.QueryEscape(onSign(onKeyBytes, onMsg))),
			onToken("products/123123", url.QueryEscape(onSign(onKeyBytes, onMsg)))},
		{"onenet: fields signed in the token's order", onenet.Password,
			onToken("products%2F123123", url.QueryEscape(onSign(onKeyBytes, onMsg))),
			onToken("products%2F123123", url.QueryEscape(onSign(onKeyBytes, "2018-10-31\nproducts/123123\n1537255523\nsha1")))},
		{"baidu: HMAC instead of a plain hash", baidu.Password,
			md5Hex("mydevice&1583826857&MD5ImSeCrEt0I1M2jkl"), hmacMD5("ImSeCrEt0I1M2jkl", "mydevice&1583826857&MD5")},
		{"baidu: secret first", baidu.Password,
			md5Hex("mydevice&1583826857&MD5ImSeCrEt0I1M2jkl"), md5Hex("ImSeCrEt0I1M2jkl" + "mydevice&1583826857&MD5")},
		{"baidu: lower-case md5 hashed", baidu.Password,
			md5Hex("mydevice&1583826857&MD5ImSeCrEt0I1M2jkl"), md5Hex("mydevice&1583826857&md5ImSeCrEt0I1M2jkl")},
		{"tuya: username signed instead of the content", tuya.Password,
			tuyaMAC("fb803786602df760", tuyaContent),
			tuyaMAC("fb803786602df760", "6c95875d0f5ba69607nzfl|signMethod=hmacSha256,timestamp=1700000000,secureMode=1,accessType=1")},
		{"tuya: key and message swapped", tuya.Password,
			tuyaMAC("fb803786602df760", tuyaContent), tuyaMAC(tuyaContent, "fb803786602df760")},
		{"tuya: milliseconds", tuya.Password,
			tuyaMAC("fb803786602df760", tuyaContent),
			tuyaMAC("fb803786602df760", "deviceId=6c95875d0f5ba69607nzfl,timestamp=1700000000000,secureMode=1,accessType=1")},
	}
	runMistakes(t, tests)
}
