package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
)

// The device of the doctor's CLI tests: Azure's documented example key.
const doctorDevice = `{"cloud":"azure","params":{"hubHost":"myiothub.azure-devices.net","deviceId":"my_device"},"secret":"NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="}`

// TestDoctorCLI runs credsign doctor on a correct triple, on one whose key
// was not base64-decoded (computed here with the standard library from
// docs/clouds.md) and on bad command lines.
func TestDoctorCLI(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev.json")
	writeFile(t, dev, []byte(doctorDevice))
	now := time.Unix(1700000000, 0)
	good, err := registry.Sign(cloud.Request{Cloud: "azure", Params: map[string]any{"hubHost": "myiothub.azure-devices.net", "deviceId": "my_device"},
		Secret: "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	const sr = "myiothub.azure-devices.net%2Fdevices%2Fmy_device"
	m := hmac.New(sha256.New, []byte("NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=")) // the mistake: the base64 text as the key
	m.Write([]byte(sr + "\n1700003600"))
	bad := "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(m.Sum(nil))) + "&se=1700003600"
	pwFile := filepath.Join(dir, "pw")
	writeFile(t, pwFile, []byte(bad+"\n"))
	base := []string{"doctor", "--device", dev, "--client-id", "my_device", "--username", "myiothub.azure-devices.net/my_device/?api-version=2021-04-12", "--now", "1700000060"}

	out, errOut, code := runCLI(t, "", append(base, "--password", good.Password)...)
	if code != 0 || !strings.Contains(out, "azure: the triple matches the recipe") || errOut != "" {
		t.Errorf("correct triple: exit %d\n%s%s", code, out, errOut)
	}

	out, errOut, code = runCLI(t, "", append(base, "--password-file", pwFile, "--connack", "5")...)
	if code != 1 || !strings.Contains(out, "the key was not base64-decoded") || !strings.Contains(out, "CONNACK 5") {
		t.Errorf("key not decoded: exit %d\n%s%s", code, out, errOut)
	}
	for _, s := range []string{"NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=", good.Password, bad, url.QueryEscape(strings.Split(strings.Split(good.Password, "sig=")[1], "&")[0])} {
		if strings.Contains(out+errOut, s) {
			t.Errorf("the output reveals a secret value %q:\n%s", s, out)
		}
	}

	// --json, the device document on standard input, the password from a file.
	out, errOut, code = runCLI(t, doctorDevice, "doctor", "--device", "-", "--client-id", "other", "--username", "u", "--password-file", pwFile, "--json", "--now", "1700000060")
	var dg cloud.Diagnosis
	if code != 1 || json.Unmarshal([]byte(out), &dg) != nil || dg.Match || dg.Findings[0].Part != "clientId" || dg.Findings[0].Status != "differs" {
		t.Errorf("--json: exit %d\n%s%s", code, out, errOut)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"doctor"}, "--device FILE|- or --id DEVICE is required"},
		{[]string{"doctor", "--device", dev, "--id", "x", "--client-id", "c", "--username", "u", "--password", "p"}, "not both"},
		{[]string{"doctor", "--device", dev, "--token-file", "x", "--client-id", "c", "--username", "u", "--password", "p"}, "--server and --token-file go with --id"},
		{[]string{"doctor", "--id", "x", "--server", "ftp://h", "--client-id", "c", "--username", "u", "--password", "p"}, "--server \"ftp://h\" is not an http(s) URL"},
		{[]string{"doctor", "--device", dev, "--username", "u", "--password", "p"}, "--client-id is required"},
		{[]string{"doctor", "--device", dev, "--client-id", "c", "--username", "u"}, "give the password the device sent once"},
		{[]string{"doctor", "--device", dev, "--client-id", "c", "--username", "u", "--password", "p", "--password-file", pwFile}, "give the password the device sent once"},
		{[]string{"doctor", "--device", dev, "--client-id", "c", "--username", "u", "--password", "p", "--connack", "300"}, "--connack \"300\""},
		{[]string{"doctor", "--device", filepath.Join(dir, "missing"), "--client-id", "c", "--username", "u", "--password", "p"}, "no such file"},
		{[]string{"doctor", "--device", dev, "--client-id", "c", "--username", "u", "--password-file", filepath.Join(dir, "missing")}, "--password-file: "},
		{[]string{"doctor", "--device", dev, "--client-id", "c", "--username", "u", "--password", "p", "--param", "deviceId=a/b"}, "--param deviceId"},
		{[]string{"doctor", "--device", "-", "--client-id", "c", "--username", "u", "--password-file", "-"}, "cannot both read standard input"},
	} {
		out, errOut, code := runCLI(t, "", tt.args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", tt.args, code, out, errOut, tt.want)
		}
	}

	// A cloud the doctor does not cover is a usage error that says so.
	other := filepath.Join(dir, "tuya.json")
	writeFile(t, other, []byte(`{"cloud":"tuya","params":{"deviceId":"d"},"secret":"s000000000000000"}`))
	_, errOut, code = runCLI(t, "", "doctor", "--device", other, "--client-id", "c", "--username", "u", "--password", "p")
	if code != 2 || !strings.Contains(errOut, "does not diagnose tuya") {
		t.Errorf("tuya: exit %d, %q", code, errOut)
	}

	out, _, code = runCLI(t, "", "doctor", "-h")
	if code != 0 || !strings.Contains(out, "--password-file") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
}

// TestDoctorCLIServer runs credsign doctor --id against a real server
// started in-process (credsign serve), with the server and the token taken
// from $CREDSIGN_SERVER and $CREDSIGN_TOKEN.
func TestDoctorCLIServer(t *testing.T) {
	r := startServe(t, map[string]string{"CREDSIGN_ADMIN_TOKEN": srvAdmin}, "--rate-limit", "0")
	base := "http://" + r.addr
	var doc map[string]any
	if err := json.Unmarshal([]byte(doctorDevice), &doc); err != nil {
		t.Fatal(err)
	}
	if code := call(t, http.DefaultClient, "PUT", base+"/v1/devices/az-1", srvAdmin, doc, nil); code != 201 {
		t.Fatalf("put device: %d", code)
	}
	var creds struct{ ClientID, Username, Password string }
	if code := call(t, http.DefaultClient, "POST", base+"/v1/devices/az-1/credentials", srvAdmin, nil, &creds); code != 200 {
		t.Fatalf("issue: %d", code)
	}
	t.Setenv("CREDSIGN_SERVER", base)
	t.Setenv("CREDSIGN_TOKEN", srvAdmin)
	args := []string{"doctor", "--id", "az-1", "--client-id", creds.ClientID, "--username", creds.Username}

	out, errOut, code := runCLI(t, "", append(args, "--password", creds.Password)...)
	if code != 0 || !strings.Contains(out, "azure: the triple matches the recipe") {
		t.Errorf("issued triple: exit %d\n%s%s", code, out, errOut)
	}
	// The sig left out of URL-encoding: sig=a%2Bb%3D becomes sig=a+b=.
	sig := strings.Split(strings.Split(creds.Password, "sig=")[1], "&")[0]
	plain, _ := url.QueryUnescape(sig)
	bad := strings.Replace(creds.Password, sig, plain, 1)
	if bad == creds.Password {
		t.Fatalf("the signature %q needs no URL-encoding; the test shows nothing", sig)
	}
	out, errOut, code = runCLI(t, "", append(args, "--password", bad, "--json")...)
	var dg cloud.Diagnosis
	if code != 1 || json.Unmarshal([]byte(out), &dg) != nil || dg.Match || !strings.Contains(out, "not URL-encoded in the password") {
		t.Errorf("sig not URL-encoded: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = runCLI(t, "", "doctor", "--id", "nope", "--client-id", "c", "--username", "u", "--password", "p")
	if code != 2 || !strings.Contains(errOut, "404") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("unknown device: exit %d, %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "", "doctor", "--id", "az-1", "--token", "csp_nope", "--client-id", "c", "--username", "u", "--password", "p")
	if code != 1 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "warning: --token is deprecated") {
		t.Errorf("bad token (deprecated --token): exit %d, %q", code, errOut)
	}
	r.shutdown(t)
	logs := r.stderr.String()
	if !strings.Contains(logs, `"event":"device.doctor"`) {
		t.Errorf("no audit event device.doctor in the server's log")
	}
	for _, s := range []string{creds.Password, bad, sig, plain, "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="} {
		if strings.Contains(logs, s) {
			t.Errorf("the server logged a secret value")
		}
	}
}
