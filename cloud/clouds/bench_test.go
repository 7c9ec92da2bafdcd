package clouds

import (
	"crypto"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strings"
	"testing"
	"time"
)

// Each cloud is benchmarked three ways on the same input:
//
//	recipe    the cloud's recipe on validated input: derive the triple, the
//	          address and the expiry
//	sign      Sign as callers use it: validate the request, then the recipe
//	bareHMAC  the baseline: only the HMAC of the already-built message with the
//	          same key and hash (crypto/hmac), which any implementation pays
//
// The ratios to bareHMAC are what matter (target: recipe within 1.5x).

// Typed sinks keep results alive without boxing them (which would allocate).
var (
	macSink  []byte
	credSink Credentials
)

func benchBareHMAC(b *testing.B, newHash func() hash.Hash, key, msg []byte) {
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(newHash, key)
		m.Write(msg)
		macSink = m.Sum(nil)
	}
}

// benchHMACCloud runs the sign and recipe sub-benchmarks for req and the
// bareHMAC baseline: msg, the message the recipe signs, under key.
func benchHMACCloud(b *testing.B, req Request, newHash func() hash.Hash, key []byte, msg string) {
	benchRecipe(b, req)
	b.Run("bareHMAC", func(b *testing.B) { benchBareHMAC(b, newHash, key, []byte(msg)) })
}

// testB64Key is testB64 decoded: the HMAC key of the clouds whose secret is base64.
var testB64Key, _ = base64.StdEncoding.DecodeString(testB64)

// benchRecipe runs the sign and recipe sub-benchmarks for req.
func benchRecipe(b *testing.B, req Request) {
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := Sign(req)
			if err != nil {
				b.Fatal(err)
			}
			credSink = c
		}
	})
	b.Run("recipe", func(b *testing.B) {
		cl, in, err := prepare(req, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			c, err := cl.Recipe(in)
			if err != nil {
				b.Fatal(err)
			}
			credSink = c
		}
	})
}

var benchNow = time.Unix(1700000000, 0)

func BenchmarkAliyun(b *testing.B) {
	req := Request{Cloud: "aliyun", Params: map[string]any{"productKey": "a14Xib5kdYd", "deviceName": "light1983432"}, Secret: "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq", Now: benchNow}
	benchHMACCloud(b, req, sha256.New, []byte(req.Secret), "clientIda14Xib5kdYd.light1983432deviceNamelight1983432productKeya14Xib5kdYdtimestamp1700000000000")
}

func BenchmarkAliyunMD5(b *testing.B) {
	req := Request{Cloud: "aliyun", Params: map[string]any{"productKey": "a14Xib5kdYd", "deviceName": "light1983432", "signMethod": "hmacmd5"}, Secret: "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq", Now: benchNow}
	benchHMACCloud(b, req, md5.New, []byte(req.Secret), "clientIda14Xib5kdYd.light1983432deviceNamelight1983432productKeya14Xib5kdYdtimestamp1700000000000")
}

func BenchmarkTencent(b *testing.B) {
	req := Request{Cloud: "tencent", Params: map[string]any{"productId": "PID1234567", "deviceName": "dev1", "connId": "abcde"}, Secret: testB64, Now: benchNow}
	benchHMACCloud(b, req, sha256.New, testB64Key, "PID1234567dev1;12010126;abcde;1700003600")
}

func BenchmarkHuawei(b *testing.B) {
	req := Request{Cloud: "huawei", Params: map[string]any{"deviceId": "6409a7f0e7ad_lamp7"}, Secret: "12345678abcdefgh", Now: benchNow}
	// Huawei keys the HMAC with the hour stamp and signs the secret.
	benchHMACCloud(b, req, sha256.New, []byte("2023111422"), req.Secret)
}

func BenchmarkAzure(b *testing.B) {
	req := Request{Cloud: "azure", Params: map[string]any{"hubHost": "myiothub.azure-devices.net", "deviceId": "my_device"}, Secret: testB64, Now: benchNow}
	benchHMACCloud(b, req, sha256.New, testB64Key, "myiothub.azure-devices.net%2Fdevices%2Fmy_device\n1700003600")
}

func BenchmarkOneNET(b *testing.B) {
	req := Request{Cloud: "onenet", Params: map[string]any{"productId": "123123", "deviceName": "lamp7"}, Secret: testB64, Now: benchNow}
	benchHMACCloud(b, req, sha256.New, testB64Key, "1700003600\nsha256\nproducts/123123/devices/lamp7\n2018-10-31")
}

func BenchmarkBaidu(b *testing.B) {
	req := Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"}, Secret: "ImSeCrEt0I1M2jkl", Now: benchNow}
	benchRecipe(b, req)
	// Baidu's password is a plain hash: the baseline is that hash alone.
	b.Run("bareHash", func(b *testing.B) {
		msg := []byte("mydevice&1700000000&MD5ImSeCrEt0I1M2jkl")
		b.ReportAllocs()
		for b.Loop() {
			s := md5.Sum(msg)
			macSink = s[:]
		}
	})
}

func BenchmarkTuya(b *testing.B) {
	req := Request{Cloud: "tuya", Params: map[string]any{"deviceId": "6c95875d0f5ba69607nzfl"}, Secret: "fb803786602df760", Now: benchNow}
	benchHMACCloud(b, req, sha256.New, []byte(req.Secret), "deviceId=6c95875d0f5ba69607nzfl,timestamp=1700000000,secureMode=1,accessType=1")
}

// benchBareJWS is the token family's baseline: the JWS signature alone
// (crypto/ecdsa, crypto/rsa or crypto/ed25519) over a signing input of
// the same length as the recipe's.
func benchBareJWS(b *testing.B, key *TokenKey, input []byte) {
	alg, _ := key.Alg()
	b.ReportAllocs()
	for b.Loop() {
		sig, err := signJWS(key.Signer, alg, input, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		macSink = sig
	}
}

func BenchmarkJWT(b *testing.B) {
	for _, alg := range []string{AlgES256, AlgRS256, AlgEdDSA} {
		b.Run(alg, func(b *testing.B) {
			key := testTokenKey(b, alg)
			req := Request{Cloud: "jwt", DeviceID: "lamp-7", Params: map[string]any{"host": "emqx.example"}, TokenKey: key, Issuer: "https://credsign.example", Now: benchNow}
			benchRecipe(b, req)
			c, _ := Sign(req)
			input := []byte(c.Password[:strings.LastIndexByte(c.Password, '.')])
			b.Run("bareJWS", func(b *testing.B) { benchBareJWS(b, key, input) })
		})
	}
}

func BenchmarkAWS(b *testing.B) {
	key := testTokenKey(b, AlgES256)
	req := Request{Cloud: "aws", DeviceID: "lamp-7", Params: map[string]any{"endpoint": "abc-ats.iot.eu-west-1.amazonaws.com", "authorizerName": "credsign"},
		Secret: testRSAPEM(b), TokenKey: key, Issuer: "https://credsign.example", Now: benchNow}
	benchRecipe(b, req)
	// The baseline: the two signatures any implementation pays, ES256 over
	// the token's signing input and RSA-SHA256 over the token.
	b.Run("bareSignatures", func(b *testing.B) {
		c, _ := Sign(req)
		_, q, _ := strings.Cut(c.Username, "&token=")
		input := []byte(q[:strings.LastIndexByte(q, '.')])
		_, in, _ := prepare(req, nil)
		rk := in.RSAKey
		b.ReportAllocs()
		for b.Loop() {
			sig, err := signJWS(key.Signer, AlgES256, input, rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.Sum256([]byte(q))
			macSink, err = rsa.SignPKCS1v15(nil, rk, crypto.SHA256, h[:])
			if err != nil || len(sig) != 64 {
				b.Fatal(err)
			}
		}
	})
}

// TestRecipeAllocations holds the HMAC and hash family's recipes to the
// allocations they make today: the one string outBuf cuts every part from,
// plus the ExpiresAt of the clouds that enforce one. A recipe whose stack
// buffer escaped to the heap (an outBuf method no longer inlined, say)
// would allocate more.
func TestRecipeAllocations(t *testing.T) {
	for cloud, want := range map[string]float64{"aliyun": 1, "tencent": 2, "huawei": 2, "azure": 2, "onenet": 2, "baidu": 2, "tuya": 1} {
		req := Request{Cloud: cloud, Params: with(cloud, "connId", "abcde"), Secret: testB64, Now: benchNow}
		if cloud != "tencent" {
			req.Params = validParams(cloud)
		}
		if cloud == "tuya" {
			req.Secret = testB64[:16] // Tuya's secrets are 16 characters
		}
		cl, in, err := prepare(req, nil)
		if err != nil {
			t.Fatalf("%s: %v", cloud, err)
		}
		got := testing.AllocsPerRun(100, func() {
			if credSink, err = cl.Recipe(in); err != nil {
				t.Fatal(err)
			}
		})
		if got > want {
			t.Errorf("%s: %v allocations a sign, want at most %v", cloud, got, want)
		}
	}
}
