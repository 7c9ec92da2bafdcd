package clouds

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The devices of the doctor's tests.
var (
	docAliyun = Request{Cloud: "aliyun", Params: map[string]any{"productKey": "a14Xib5kdYd", "deviceName": "light1983432", "clientId": "SN1928339"},
		Secret: "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq"}
	docTencent = Request{Cloud: "tencent", Params: map[string]any{"productId": "P1X2Y3", "deviceName": "dev1", "connId": "abcde"},
		Secret: "c2VjcmV0LXBzay1ieXRlcw=="}
	docHuawei = Request{Cloud: "huawei", Params: map[string]any{"deviceId": "prod_node1"}, Secret: "12345678abcdef"}
	docAzure  = Request{Cloud: "azure", Params: map[string]any{"hubHost": "myiothub.azure-devices.net", "deviceId": "my_device"},
		Secret: "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="}
	docOneNET = Request{Cloud: "onenet", Params: map[string]any{"productId": "123123", "deviceName": "d1"},
		Secret: "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw="}
)

// issued is when the test triples are made; checked is when they are judged.
var (
	issued  = time.Date(2026, 11, 30, 10, 20, 30, 123e6, time.UTC)
	checked = issued.Add(2 * time.Minute)
)

func hm(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func b64d(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func signed(t *testing.T, req Request, now time.Time) Triple {
	t.Helper()
	req.Now = now
	c := mustSign(t, req)
	return Triple{ClientID: c.ClientID, Username: c.Username, Password: c.Password}
}

// edited is the triple req signs at issued, changed by edit.
func edited(t *testing.T, req Request, edit func(*Triple)) Triple {
	t.Helper()
	tr := signed(t, req, issued)
	edit(&tr)
	return tr
}

// The classic mistakes, each computed here from docs/clouds.md with the
// standard library (not with the doctor's code), as in mistakes_test.go.

func aliyunTriple(id string, ts string, method string, h func() hash.Hash, key []byte, content string, enc func([]byte) string) Triple {
	return Triple{
		ClientID: id + "|securemode=2,signmethod=" + method + ",timestamp=" + ts + "|",
		Username: "light1983432&a14Xib5kdYd",
		Password: enc(hm(h, key, content)),
	}
}

func aliyunContent(ts string) string {
	return "clientIdSN1928339deviceNamelight1983432productKeya14Xib5kdYdtimestamp" + ts
}

func tencentTriple(expiry string, h func() hash.Hash, key []byte, method string, enc func([]byte) string) Triple {
	user := "P1X2Y3dev1;12010126;abcde;" + expiry
	return Triple{ClientID: "P1X2Y3dev1", Username: user, Password: enc(hm(h, key, user)) + ";" + method}
}

func huaweiTriple(flag, clientTS string, key, msg string) Triple {
	return Triple{ClientID: "prod_node1_0_" + flag + "_" + clientTS, Username: "prod_node1", Password: hex.EncodeToString(hm(sha256.New, []byte(key), msg))}
}

const azSR = "myiothub.azure-devices.net%2Fdevices%2Fmy_device"

func azureTriple(srSent, signed, se string, key []byte, enc func([]byte) string) Triple {
	return Triple{ClientID: "my_device", Username: "myiothub.azure-devices.net/my_device/?api-version=2021-04-12",
		Password: "SharedAccessSignature sr=" + srSent + "&sig=" + enc(hm(sha256.New, key, signed+"\n"+se)) + "&se=" + se}
}

func urlB64(b []byte) string { return url.QueryEscape(base64.StdEncoding.EncodeToString(b)) }

const onRes = "products/123123/devices/d1"

func onenetTriple(res, et, method string, h func() hash.Hash, key []byte, msg string, enc func([]byte) string) Triple {
	return Triple{ClientID: "d1", Username: "123123",
		Password: "version=2018-10-31&res=" + res + "&et=" + et + "&method=" + method + "&sign=" + enc(hm(h, key, msg))}
}

func TestDiagnose(t *testing.T) {
	ms := strconv.FormatInt(issued.UnixMilli(), 10)
	sec := strconv.FormatInt(issued.Unix(), 10)
	exp := strconv.FormatInt(issued.Add(time.Hour).Unix(), 10)
	expMS := strconv.FormatInt(issued.Add(time.Hour).Unix()*1000, 10)
	stale := strconv.FormatInt(issued.Add(-time.Hour).Unix(), 10)
	aliKey := []byte(docAliyun.Secret)
	tenKey, azKey, onKey := b64d(docTencent.Secret), b64d(docAzure.Secret), b64d(docOneNET.Secret)
	hour := issued.Format("2006010215")
	hourCN := issued.Add(8 * time.Hour).Format("2006010215")
	hourOld := issued.Add(-3 * time.Hour).Format("2006010215")
	onMsg := func(et, m string) string { return et + "\n" + m + "\n" + onRes + "\n2018-10-31" }
	qres := url.QueryEscape(onRes)

	tests := []struct {
		name  string
		req   Request
		got   Triple
		match bool
		part  string // the part whose finding names the cause
		cause string // a phrase of that finding
	}{
		// aliyun
		{"aliyun: correct", docAliyun, signed(t, docAliyun, issued), true, PartPassword, "matches the recipe with the timestamp " + ms},
		{"aliyun: upper-case hex is accepted", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha256.New, aliKey, aliyunContent(ms), func(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }),
			true, PartPassword, "upper-case hex, which the platform accepts"},
		{"aliyun: seconds in the ClientId and the content", docAliyun, aliyunTriple("SN1928339", sec, "hmacsha256", sha256.New, aliKey, aliyunContent(sec), hex.EncodeToString),
			true, PartClientID, "looks like seconds where the recipe writes milliseconds; aliyun does not check it"},
		{"aliyun: productKey and deviceName swapped in the content", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha256.New, aliKey,
			"clientIdSN1928339deviceNamea14Xib5kdYdproductKeylight1983432timestamp"+ms, hex.EncodeToString),
			false, PartPassword, "swapped in the signed content"},
		{"aliyun: two mistakes, sha1 and seconds", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha1.New, aliKey, aliyunContent(sec), hex.EncodeToString),
			false, PartPassword, "HMAC-SHA1 but HMAC-SHA256 is declared; and the timestamp " + ms + " is sent in milliseconds but was signed in seconds"},
		{"aliyun: signed in seconds, sent in milliseconds", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha256.New, aliKey, aliyunContent(sec), hex.EncodeToString),
			false, PartPassword, "sent in milliseconds but was signed in seconds"},
		{"aliyun: sha1 labelled hmacsha256", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha1.New, aliKey, aliyunContent(ms), hex.EncodeToString),
			false, PartPassword, "wrong sign method: the password is HMAC-SHA1 but HMAC-SHA256 is declared"},
		{"aliyun: md5 labelled hmacsha1", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha1", md5.New, aliKey, aliyunContent(ms), hex.EncodeToString),
			false, PartPassword, "the password is HMAC-MD5 but HMAC-SHA1 is declared"},
		{"aliyun: whole ClientId signed", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha256.New, aliKey,
			"clientIdSN1928339|securemode=2,signmethod=hmacsha256,timestamp="+ms+"|deviceNamelight1983432productKeya14Xib5kdYdtimestamp"+ms, hex.EncodeToString),
			false, PartPassword, "the whole ClientId"},
		{"aliyun: timestamp left out of content", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha256.New, aliKey,
			"clientIdSN1928339deviceNamelight1983432productKeya14Xib5kdYd", hex.EncodeToString),
			false, PartPassword, "timestamp was left out"},
		{"aliyun: secret base64-decoded", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha256.New, b64d(docAliyun.Secret), aliyunContent(ms), hex.EncodeToString),
			false, PartPassword, "the key was base64-decoded"},
		{"aliyun: base64 instead of hex", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha256.New, aliKey, aliyunContent(ms), base64.StdEncoding.EncodeToString),
			false, PartPassword, "base64-encoded instead of hex"},
		{"aliyun: productKey and deviceName swapped in the username", docAliyun, edited(t, docAliyun, func(tr *Triple) { tr.Username = "a14Xib5kdYd&light1983432" }),
			false, PartUsername, "productKey and deviceName in the wrong order"},
		{"aliyun: wrong secret", docAliyun, aliyunTriple("SN1928339", ms, "hmacsha256", sha256.New, []byte("another-secret"), aliyunContent(ms), hex.EncodeToString),
			false, PartPassword, "wrong secret or an unknown mistake"},
		{"aliyun: random password", docAliyun, edited(t, docAliyun, func(tr *Triple) { tr.Password = "not-a-password-at-all" }),
			false, PartPassword, "wrong secret or an unknown mistake"},

		// tencent
		{"tencent: correct", docTencent, signed(t, docTencent, issued), true, PartPassword, "matches the recipe over the username"},
		{"tencent: PSK not decoded", docTencent, tencentTriple(exp, sha256.New, []byte(docTencent.Secret), "hmacsha256", hex.EncodeToString),
			false, PartPassword, "the key was not base64-decoded"},
		{"tencent: expiry in milliseconds", docTencent, tencentTriple(expMS, sha256.New, tenKey, "hmacsha256", hex.EncodeToString),
			false, PartUsername, "is in milliseconds where Unix seconds are expected"},
		{"tencent: stale", docTencent, tencentTriple(stale, sha256.New, tenKey, "hmacsha256", hex.EncodeToString),
			false, PartUsername, "had passed 1h2m0s before"},
		{"tencent: sha1 labelled sha256", docTencent, tencentTriple(exp, sha1.New, tenKey, "hmacsha256", hex.EncodeToString),
			false, PartPassword, "the password is HMAC-SHA1 but HMAC-SHA256 is declared"},
		{"tencent: upper-case hex", docTencent, tencentTriple(exp, sha256.New, tenKey, "hmacsha256", func(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }),
			false, PartPassword, "upper-case hex"},
		{"tencent: ClientId swapped", docTencent, edited(t, docTencent, func(tr *Triple) { tr.ClientID = "dev1P1X2Y3" }),
			false, PartClientID, "productId and deviceName in the wrong order"},
		{"tencent: wrong secret", docTencent, tencentTriple(exp, sha256.New, []byte("0123456789abcdef"), "hmacsha256", hex.EncodeToString),
			false, PartPassword, "wrong secret or an unknown mistake"},

		// huawei
		{"huawei: correct", docHuawei, signed(t, docHuawei, issued), true, PartPassword, "matches the recipe with the hour " + hour},
		{"huawei: key and message swapped", docHuawei, huaweiTriple("1", hour, docHuawei.Secret, hour), false, PartPassword, "key and message swapped"},
		{"huawei: local time UTC+8", docHuawei, huaweiTriple("1", hourCN, hourCN, docHuawei.Secret), false, PartClientID, "local time (UTC+8, China)"},
		{"huawei: local time in the password only", docHuawei, huaweiTriple("1", hour, hourCN, docHuawei.Secret), false, PartPassword, "local time UTC+8 in the password"},
		{"huawei: stale hour", docHuawei, huaweiTriple("1", hourOld, hourOld, docHuawei.Secret), false, PartClientID, "3h0m0s behind"},
		{"huawei: stale hour unchecked", docHuawei, huaweiTriple("0", hourOld, hourOld, docHuawei.Secret), true, PartClientID, "the timestamp is not checked"},
		{"huawei: wrong secret", docHuawei, huaweiTriple("1", hour, hour, "nope-nope"), false, PartPassword, "wrong secret or an unknown mistake"},

		// azure
		{"azure: correct", docAzure, signed(t, docAzure, issued), true, PartPassword, "matches the recipe with the se " + exp},
		{"azure: key not decoded", docAzure, azureTriple(azSR, azSR, exp, []byte(docAzure.Secret), urlB64), false, PartPassword, "the key was not base64-decoded"},
		{"azure: se in milliseconds", docAzure, azureTriple(azSR, azSR, expMS, azKey, urlB64), false, PartPassword, "in milliseconds where Unix seconds are expected"},
		{"azure: se signed in milliseconds, sent in seconds", docAzure, Triple{ClientID: "my_device", Username: "myiothub.azure-devices.net/my_device/?api-version=2021-04-12",
			Password: "SharedAccessSignature sr=" + azSR + "&sig=" + urlB64(hm(sha256.New, azKey, azSR+"\n"+expMS)) + "&se=" + exp}, false, PartPassword, "sent in seconds but was signed in milliseconds"},
		{"azure: sig not URL-encoded", docAzure, azureTriple(azSR, azSR, exp, azKey, base64.StdEncoding.EncodeToString), false, PartPassword, "not URL-encoded in the password"},
		{"azure: raw resource signed", docAzure, azureTriple(azSR, "myiothub.azure-devices.net/devices/my_device", exp, azKey, urlB64), false, PartPassword, "the raw resource was signed"},
		{"azure: sr not encoded", docAzure, azureTriple("myiothub.azure-devices.net/devices/my_device", azSR, exp, azKey, urlB64), false, PartPassword, "is not URL-encoded"},
		{"azure: expired", docAzure, azureTriple(azSR, azSR, stale, azKey, urlB64), false, PartPassword, "had passed"},
		{"azure: wrong secret", docAzure, azureTriple(azSR, azSR, exp, b64d("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), urlB64), false, PartPassword, "wrong secret or an unknown mistake"},

		// onenet
		{"onenet: correct", docOneNET, signed(t, docOneNET, issued), true, PartPassword, "matches the recipe with the et " + exp},
		{"onenet: key not decoded", docOneNET, onenetTriple(qres, exp, "sha256", sha256.New, []byte(docOneNET.Secret), onMsg(exp, "sha256"), urlB64),
			false, PartPassword, "the key was not base64-decoded"},
		{"onenet: sign not URL-encoded", docOneNET, onenetTriple(qres, exp, "sha256", sha256.New, onKey, onMsg(exp, "sha256"), base64.StdEncoding.EncodeToString),
			false, PartPassword, "not URL-encoded in the password"},
		{"onenet: res not URL-encoded", docOneNET, onenetTriple(onRes, exp, "sha256", sha256.New, onKey, onMsg(exp, "sha256"), urlB64),
			false, PartPassword, "is not URL-encoded"},
		{"onenet: token order signed", docOneNET, onenetTriple(qres, exp, "sha256", sha256.New, onKey, "2018-10-31\n"+onRes+"\n"+exp+"\nsha256", urlB64),
			false, PartPassword, "signed in the token's order"},
		{"onenet: md5 labelled sha256", docOneNET, onenetTriple(qres, exp, "sha256", md5.New, onKey, onMsg(exp, "sha256"), urlB64),
			false, PartPassword, "the password is HMAC-MD5 but HMAC-SHA256 is declared"},
		{"onenet: et in milliseconds", docOneNET, onenetTriple(qres, expMS, "sha256", sha256.New, onKey, onMsg(expMS, "sha256"), urlB64),
			false, PartPassword, "in milliseconds where Unix seconds are expected"},
		{"onenet: hmacsha1 for sha1", docOneNET, onenetTriple(qres, exp, "hmacsha1", sha1.New, onKey, onMsg(exp, "sha1"), urlB64),
			false, PartPassword, "OneNET names it sha1"},
		{"onenet: ClientId and username swapped", docOneNET, edited(t, docOneNET, func(tr *Triple) { tr.ClientID, tr.Username = tr.Username, tr.ClientID }),
			false, PartClientID, "swapped"},
		{"onenet: wrong secret", docOneNET, onenetTriple(qres, exp, "sha256", sha256.New, []byte("wrong"), onMsg(exp, "sha256"), urlB64),
			false, PartPassword, "wrong secret or an unknown mistake"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.Now = checked
			dg, err := Diagnose(req, tt.got, NoConnack)
			if err != nil {
				t.Fatal(err)
			}
			if dg.Match != tt.match {
				t.Errorf("Match = %v, want %v; findings:\n%s", dg.Match, tt.match, dump(dg))
			}
			found := false
			for _, f := range dg.Findings {
				if f.Part == tt.part && strings.Contains(f.Cause, tt.cause) {
					found = true
					if (f.Status == StatusDiffers) == tt.match {
						t.Errorf("finding %q has status %s; the triple should match: %v", f.Cause, f.Status, tt.match)
					}
				}
			}
			if !found {
				t.Errorf("no %s finding mentions %q; findings:\n%s", tt.part, tt.cause, dump(dg))
			}
			assertNoSecrets(t, req, tt.got, dg)
		})
	}
}

func dump(dg Diagnosis) string {
	var b strings.Builder
	for _, f := range dg.Findings {
		b.WriteString("  " + f.Part + " " + f.Status + " " + f.Confidence + ": " + f.Cause + "\n")
	}
	return b.String()
}

// assertNoSecrets checks that no text of dg contains the secret, the
// expected password (signed at the issue time the triple claims, or any
// time near the check) or the captured password.
func assertNoSecrets(t *testing.T, req Request, got Triple, dg Diagnosis) {
	t.Helper()
	noSecrets(t, req, got.Password, got.ClientID+got.Username, dg, issued, checked, req.Now)
}

// noSecrets checks that no finding of dg contains the secret, the password
// req signs at any of the times at, or the captured password, unless that
// is made of the text quotable the findings may quote (identifiers,
// timestamps).
func noSecrets(t *testing.T, req Request, password, quotable string, dg Diagnosis, at ...time.Time) {
	t.Helper()
	forbidden := []string{req.Secret}
	if len(password) >= 8 && !strings.Contains(quotable, password) {
		forbidden = append(forbidden, password)
	}
	for _, now := range at {
		r := req
		r.Now = now
		if c, err := Sign(r); err == nil {
			forbidden = append(forbidden, c.Password)
		}
	}
	for _, f := range dg.Findings {
		for _, s := range forbidden {
			if s != "" && strings.Contains(f.Cause, s) {
				t.Fatalf("finding %q reveals a secret value", f.Cause)
			}
		}
	}
}

// FuzzDiagnose checks that Diagnose never panics on a captured triple and
// that no text it returns contains the secret, a password the recipe
// produces or the captured password.
func FuzzDiagnose(f *testing.F) {
	devices := []Request{docAliyun, docTencent, docHuawei, docAzure, docOneNET}
	for i, r := range devices {
		r.Now = issued
		c, err := Sign(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), c.ClientID, c.Username, c.Password, int64(120), 4)
		f.Add(uint8(i), c.ClientID+"|", c.Username+";", strings.ToUpper(c.Password), int64(-7200), 5)
	}
	f.Add(uint8(0), "id|timestamp=99999999999999999999,signmethod=x|", "&", "", int64(0), 0)
	f.Add(uint8(3), "", "", "SharedAccessSignature se=99999999999999999999999&sig=%zz", int64(1<<40), 135)
	f.Fuzz(func(t *testing.T, dev uint8, clientID, username, password string, offset int64, connack int) {
		req := devices[int(dev)%len(devices)]
		req.Now = issued.Add(time.Duration(offset%(1<<34)) * time.Second)
		got := Triple{ClientID: clientID, Username: username, Password: password}
		dg, err := Diagnose(req, got, connack)
		if err != nil {
			t.Fatalf("a valid device gave an error: %v", err)
		}
		if len(dg.Findings) == 0 {
			t.Fatal("no findings")
		}
		// The captured password is forbidden unless the fuzzer made it out of
		// text the findings may quote (identifiers, timestamps).
		noSecrets(t, req, password, clientID+username+"products/123123/devices/d1 myiothub.azure-devices.net light1983432&a14Xib5kdYd P1X2Y3dev1 prod_node1", dg, issued, req.Now)
	})
}

// TestDiagnoseRefuses checks the inputs Diagnose does not judge.
func TestDiagnoseRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		req  Request
	}{
		{"not covered", Request{Cloud: "baidu", Params: map[string]any{"iotCoreId": "abcd123", "deviceKey": "mydevice"}, Secret: "s", Now: issued}},
		{"unknown cloud", Request{Cloud: "nope", Now: issued}},
		{"no now", docAliyun},
		{"bad params", Request{Cloud: "aliyun", Params: map[string]any{"productKey": "x"}, Secret: "s", Now: issued}},
		{"bad secret", Request{Cloud: "azure", Params: docAzure.Params, Secret: "not base64!", Now: issued}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Diagnose(tt.req, Triple{}, NoConnack)
			if !IsInvalid(err) {
				t.Fatalf("err = %v, want an *InvalidError", err)
			}
			if tt.req.Secret != "" && strings.Contains(err.Error(), tt.req.Secret) && len(tt.req.Secret) > 1 {
				t.Fatalf("error reveals the secret: %v", err)
			}
		})
	}
}

// BenchmarkDiagnose measures a diagnosis against signing the same device
// (the baseline): a triple that matches stops at the recipe; a password
// nothing reproduces costs the whole search of single and paired mistakes.
func BenchmarkDiagnose(b *testing.B) {
	for _, r := range []Request{docAliyun, docHuawei, docAzure} {
		r.Now = issued
		c, err := Sign(r)
		if err != nil {
			b.Fatal(err)
		}
		good := Triple{ClientID: c.ClientID, Username: c.Username, Password: c.Password}
		bad := good
		bad.Password = strings.Repeat("0", len(c.Password))
		if r.Cloud == "azure" {
			bad.Password = strings.Replace(c.Password, "sig=", "sig=AAAA", 1)
		}
		b.Run(r.Cloud+"/sign", func(b *testing.B) {
			for range b.N {
				if _, err := Sign(r); err != nil {
					b.Fatal(err)
				}
			}
		})
		for name, tr := range map[string]Triple{"match": good, "unknown": bad} {
			b.Run(r.Cloud+"/diagnose-"+name, func(b *testing.B) {
				for range b.N {
					if _, err := Diagnose(r, tr, NoConnack); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
