package aliyun

import (
	"testing"

	"github.com/credsign/credsign/cloud/registration"
)

// safe is registration.Safe, as this test was written.
var safe = registration.Safe

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
