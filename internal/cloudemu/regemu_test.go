package cloudemu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The registration emulators are checked here with requests built by hand
// from the vendors' documents, without package registration.

// Microsoft's group enrollment derivation vector ("How to provision devices
// using symmetric key enrollment groups", learn.microsoft.com/azure/iot-dps).
const (
	msGroupKey  = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	msRegID     = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	msDeviceKey = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
)

func hmacB64(key, msg string) string {
	k, _ := base64.StdEncoding.DecodeString(key)
	m := hmac.New(sha256.New, k)
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func dpsAuth(deviceKey, scope, regID string, se int64, skn string) string {
	sr := url.QueryEscape(scope + "/registrations/" + regID)
	s := "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(hmacB64(deviceKey, sr+"\n"+strconv.FormatInt(se, 10))) + "&se=" + strconv.FormatInt(se, 10)
	if skn != "" {
		s += "&skn=" + skn
	}
	return s
}

func do(t *testing.T, c *http.Client, method, u, ctype string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestMicrosoftDerivationVector(t *testing.T) {
	if got := hmacB64(msGroupKey, msRegID); got != msDeviceKey {
		t.Fatalf("derived %s, Microsoft publishes %s", got, msDeviceKey)
	}
	if got, err := DPSDeviceKey(msGroupKey, msRegID); err != nil || got != msDeviceKey {
		t.Fatalf("DPSDeviceKey: %s %v, Microsoft publishes %s", got, err, msDeviceKey)
	}
	if _, err := DPSDeviceKey("not base64!", msRegID); err == nil {
		t.Fatal("DPSDeviceKey took a group key that is not base64")
	}
}

func TestDPSEmulatorFlow(t *testing.T) {
	clock := &skewClock{}
	d, err := StartDPS(DPSOptions{IDScope: "0ne0001", Now: clock.Now, RetryAfter: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.AddGroup(DPSGroup{Key: msGroupKey, Hub: "h.azure-devices.net"}); err != nil {
		t.Fatal(err)
	}
	c := d.Client()
	base := "https://" + d.Addr() + "/0ne0001/registrations/" + msRegID
	auth := map[string]string{"Authorization": dpsAuth(msDeviceKey, "0ne0001", msRegID, clock.Now().Add(time.Hour).Unix(), "registration")}
	resp, b := do(t, c, http.MethodPut, base+"/register?api-version=2021-10-01", "application/json", []byte(`{"registrationId":"`+msRegID+`"}`), auth)
	var op struct{ OperationID, Status string }
	if err := json.Unmarshal(b, &op); err != nil || resp.StatusCode != 202 || op.Status != "assigning" || op.OperationID == "" || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("register: %d %s %v", resp.StatusCode, b, resp.Header)
	}
	poll := base + "/operations/" + op.OperationID + "?api-version=2021-10-01"
	if resp, _ := do(t, c, http.MethodGet, poll, "", nil, auth); resp.StatusCode != http.StatusTooManyRequests || d.EarlyPolls() != 1 {
		t.Fatalf("early poll: %d, early polls %d", resp.StatusCode, d.EarlyPolls())
	}
	clock.Advance(3 * time.Second)
	if resp, b := do(t, c, http.MethodGet, poll, "", nil, auth); resp.StatusCode != 202 || !strings.Contains(string(b), `"assigning"`) {
		t.Fatalf("first poll: %d %s", resp.StatusCode, b)
	}
	clock.Advance(3 * time.Second)
	resp, b = do(t, c, http.MethodGet, poll, "", nil, auth)
	var done struct {
		Status            string
		RegistrationState struct{ AssignedHub, DeviceID, Status string }
	}
	if err := json.Unmarshal(b, &done); err != nil || resp.StatusCode != 200 || done.Status != "assigned" ||
		done.RegistrationState.AssignedHub != "h.azure-devices.net" || done.RegistrationState.DeviceID != msRegID {
		t.Fatalf("second poll: %d %s", resp.StatusCode, b)
	}
	if dev, ok := d.Device(msRegID); !ok || dev.Key != msDeviceKey || d.Registrations() != 1 {
		t.Fatalf("device %+v %v, registrations %d", dev, ok, d.Registrations())
	}
}

func TestDPSEmulatorRefuses(t *testing.T) {
	clock := &skewClock{}
	d, err := StartDPS(DPSOptions{IDScope: "0ne0001", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.AddGroup(DPSGroup{Key: msGroupKey, Hub: "h"}); err != nil {
		t.Fatal(err)
	}
	se := clock.Now().Add(time.Hour).Unix()
	good := dpsAuth(msDeviceKey, "0ne0001", msRegID, se, "registration")
	body := `{"registrationId":"` + msRegID + `"}`
	cases := []struct {
		name, scope, version, auth, body string
		status                           int
	}{
		{"accepted", "0ne0001", "2021-10-01", good, body, 202},
		{"accepted without skn", "0ne0001", "2021-06-01", dpsAuth(msDeviceKey, "0ne0001", msRegID, se, ""), body, 202},
		{"signed with the group key itself", "0ne0001", "2021-10-01", dpsAuth(msGroupKey, "0ne0001", msRegID, se, "registration"), body, 401},
		{"expired", "0ne0001", "2021-10-01", dpsAuth(msDeviceKey, "0ne0001", msRegID, clock.Now().Add(-time.Second).Unix(), "registration"), body, 401},
		{"sr names another device", "0ne0001", "2021-10-01", dpsAuth(msDeviceKey, "0ne0001", "other", se, "registration"), body, 401},
		{"skn not registration", "0ne0001", "2021-10-01", dpsAuth(msDeviceKey, "0ne0001", msRegID, se, "iothubowner"), body, 401},
		{"no Authorization", "0ne0001", "2021-10-01", "", body, 401},
		{"unknown scope", "0ne0002", "2021-10-01", dpsAuth(msDeviceKey, "0ne0002", msRegID, se, "registration"), body, 401},
		{"no api-version", "0ne0001", "", good, body, 400},
		{"body names another device", "0ne0001", "2021-10-01", good, `{"registrationId":"other"}`, 400},
	}
	for _, tc := range cases {
		u := "https://" + d.Addr() + "/" + tc.scope + "/registrations/" + msRegID + "/register"
		if tc.version != "" {
			u += "?api-version=" + tc.version
		}
		resp, b := do(t, d.Client(), http.MethodPut, u, "application/json", []byte(tc.body), map[string]string{"Authorization": tc.auth})
		if resp.StatusCode != tc.status {
			t.Errorf("%s: HTTP %d %s, want %d", tc.name, resp.StatusCode, b, tc.status)
		}
	}
	if d.Registrations() != 2 {
		t.Fatalf("registrations = %d, want 2", d.Registrations())
	}
}

// startAliyun starts an Aliyun dynamic registration emulator that closes
// when t ends.
func startAliyun(t *testing.T) *AliyunDynReg {
	t.Helper()
	a, err := StartAliyunDynReg(AliyunDynRegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func TestAliyunDynRegEmulator(t *testing.T) {
	a := startAliyun(t)
	a.AddProduct("a1pk", "productSecret1")
	a.AddDevice("a1pk", "dev1", "deviceSecret1")
	// sign = hex(HMAC-MD5(productSecret, "deviceName" + dn + "productKey" + pk + "random" + r)), the
	// parameters sorted by name (Alibaba Cloud, 直连设备使用HTTPS动态注册).
	sign := func(secret, dn, random string) string {
		m := hmac.New(md5.New, []byte(secret))
		m.Write([]byte("deviceName" + dn + "productKey" + "a1pk" + "random" + random))
		return hex.EncodeToString(m.Sum(nil))
	}
	form := func(dn, s string, method string) []byte {
		v := url.Values{"productKey": {"a1pk"}, "deviceName": {dn}, "random": {"8a7c"}, "sign": {s}}
		if method != "" {
			v.Set("signMethod", method)
		}
		return []byte(v.Encode())
	}
	const formType = "application/x-www-form-urlencoded"
	cases := []struct {
		name, ctype string
		body        []byte
		status      int
		secret      string
	}{
		{"hmacmd5 by default", formType, form("dev1", sign("productSecret1", "dev1", "8a7c"), ""), 200, "deviceSecret1"},
		{"upper-case hex", formType, form("dev1", strings.ToUpper(sign("productSecret1", "dev1", "8a7c")), "hmacmd5"), 200, "deviceSecret1"},
		{"wrong product secret", formType, form("dev1", sign("productSecret2", "dev1", "8a7c"), ""), 401, ""},
		{"signed with another method", formType, form("dev1", sign("productSecret1", "dev1", "8a7c"), "hmacsha256"), 401, ""},
		{"device not created", formType, form("dev2", sign("productSecret1", "dev2", "8a7c"), ""), 404, ""},
		{"JSON body", "application/json", []byte(`{}`), 400, ""},
	}
	for _, tc := range cases {
		resp, b := do(t, a.Client(), http.MethodPost, "https://"+a.Addr()+"/auth/register/device", tc.ctype, tc.body, nil)
		var ans struct {
			Code int
			Data struct{ DeviceSecret string }
		}
		_ = json.Unmarshal(b, &ans)
		if resp.StatusCode != tc.status || ans.Data.DeviceSecret != tc.secret || (tc.status == 200) != (ans.Code == 200) {
			t.Errorf("%s: HTTP %d %s", tc.name, resp.StatusCode, b)
		}
	}
	if a.Registrations() != 2 {
		t.Fatalf("registrations = %d", a.Registrations())
	}
}

func TestTencentDynRegEmulator(t *testing.T) {
	clock := &skewClock{}
	e, err := StartTencentDynReg(TencentDynRegOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	const secret = "Y3QY9pWCMCmlbYDPZ6YkvW4O"
	e.AddProduct("PRODUCT01", secret)
	e.AddDevice("PRODUCT01", "dev1", "cHNrMTIz")
	body := []byte(`{"ProductId":"PRODUCT01","DeviceName":"dev1"}`)
	// X-TC-Signature per Tencent's "Signature Algorithm" (签名方法).
	headers := func(key string, ts int64) map[string]string {
		sum := sha256.Sum256(body)
		toSign := "POST\n" + e.Addr() + "\n/device/register\n\nhmacsha256\n" + strconv.FormatInt(ts, 10) + "\n5456\n" + hex.EncodeToString(sum[:])
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(toSign))
		return map[string]string{"X-TC-Algorithm": "hmacsha256", "X-TC-Timestamp": strconv.FormatInt(ts, 10), "X-TC-Nonce": "5456",
			"X-TC-Signature": base64.StdEncoding.EncodeToString(m.Sum(nil))}
	}
	now := clock.Now().Unix()
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"signed", headers(secret, now), 200},
		{"wrong secret", headers("Y3QY9pWCMCmlbYDPZ6YkvW4X", now), 401},
		{"ten minutes old", headers(secret, now-600), 401},
	} {
		resp, b := do(t, e.Client(), http.MethodPost, "https://"+e.Addr()+"/device/register", "application/json; charset=utf-8", body, tc.hdr)
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: HTTP %d %s", tc.name, resp.StatusCode, b)
		}
		if tc.status != 200 {
			continue
		}
		var ans struct {
			Response struct {
				Len     int
				Payload string
			}
		}
		if err := json.Unmarshal(b, &ans); err != nil {
			t.Fatal(err)
		}
		// AES-128-CBC, key = first 16 characters of the product secret, IV = "0"×16 (动态注册接口说明).
		ct, _ := base64.StdEncoding.DecodeString(ans.Response.Payload)
		block, _ := aes.NewCipher([]byte(secret[:16]))
		if len(ct) == 0 || len(ct)%16 != 0 || ans.Response.Len > len(ct) {
			t.Fatalf("payload %q, Len %d", ans.Response.Payload, ans.Response.Len)
		}
		plain := make([]byte, len(ct))
		cipher.NewCBCDecrypter(block, []byte("0000000000000000")).CryptBlocks(plain, ct)
		if got := string(plain[:ans.Response.Len]); got != `{"encryptionType":2,"psk":"cHNrMTIz"}` {
			t.Fatalf("decrypted %q", got)
		}
	}
	if e.Registrations() != 1 {
		t.Fatalf("registrations = %d", e.Registrations())
	}
}

func TestInjectedFaultsAndLog(t *testing.T) {
	a := startAliyun(t)
	a.InjectFaults(Fault{Status: 503, RetryAfter: "7"})
	resp, _ := do(t, a.Client(), http.MethodPost, "https://"+a.Addr()+"/auth/register/device", "", nil, nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("fault: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, a.Client(), http.MethodPost, "https://"+a.Addr()+"/auth/register/device", "", nil, nil)
	if resp.StatusCode != 400 {
		t.Fatalf("after the fault: %d", resp.StatusCode)
	}
	if log := a.Requests(); len(log) != 2 || log[0].Status != 503 || log[1].Status != 400 || log[1].Path != "/auth/register/device" {
		t.Fatalf("log = %+v", log)
	}
}

// Tencent Cloud docs, "Dynamic Registration API Description" (动态注册接口说明,
// tencentcloud.com/document/product/1105/41820), "Payload data parsing
// sample": with product secret hzvf5LF9S0isvBhDSauWMaIk the JSON below
// encrypts to the published payload (the IV is fixed, so the cipher text is
// too; the zero padding shows in the decrypted sample).
func TestTencentPayloadVendorVector(t *testing.T) {
	got, err := tencentEncrypt("hzvf5LF9S0isvBhDSauWMaIk", []byte(`{"encryptionType":2,"psk":"lDZ6Uqt+I9E0wW7rvDUs7Q=="}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "s6FB3a1BA/YYbcmSE12XpeDVmQNDcf1QgVD141RRbmmAnFwQfp1ECAu5O016mCOvYlJJ6V59yM4OqQSiWphfTg=="; got != want {
		t.Fatalf("payload %s, Tencent publishes %s", got, want)
	}
}
