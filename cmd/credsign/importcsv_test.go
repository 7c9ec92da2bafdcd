package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// getDevice reads a device through the API as the admin.
func getDevice(t *testing.T, url, id string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/v1/devices/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+importAdmin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var d map[string]any
	_ = json.NewDecoder(res.Body).Decode(&d)
	return res.StatusCode, d
}

// TestImportConsoleCSV runs `credsign import` on console CSV files
// against a real server: the devices land with the params of their
// columns and flags; a malformed line gets a per-line error in the same
// summary as a line the server refused, and the rest imports.
func TestImportConsoleCSV(t *testing.T) {
	url := importServer(t)
	dir := t.TempDir()

	// Tencent result with Chinese headers, a BOM and CRLF, no ProductId
	// column: --param supplies it, --label tags the batch.
	tencent := filepath.Join(dir, "tencent.csv")
	body := "\ufeff设备名称,设备密钥\r\n" +
		"th-01,c2VjcmV0LXBzay0wMQ==\r\n" +
		"th-02\r\n" + // malformed: one field
		"\"th-03\",\"c2VjcmV0LXBzay0wMw==\"\r\n" +
		"th-04,\r\n" // no secret
	if err := os.WriteFile(tencent, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens.csv")
	code, out, errs := runImportCLI(t, "import", "--server", url, "--format", "tencent-csv",
		"--param", "productId=9KX2P7QDRF", "--param", "port=8883", "--label", "batch=b7",
		"--id-template", "{deviceName}", "--tokens-out", tokens, tencent)
	summaryHas(t, code, exitError, out, errs,
		"tencent.csv: 4 rows from line 1: 2 created, 0 updated, 2 failed, 2 tokens",
		"as console CSV tencent-csv (Tencent Cloud",
		"failed lines (first 2 of 2):\n  line 3: 1 fields, the header has 2\n  line 5 (th-04): no secret\n",
	)
	code1, d := getDevice(t, url, "th-01")
	wantParams := map[string]any{"productId": "9KX2P7QDRF", "deviceName": "th-01", "port": float64(8883)}
	if code1 != 200 || d["cloud"] != "tencent" || !reflect.DeepEqual(d["params"], wantParams) ||
		!reflect.DeepEqual(d["labels"], map[string]any{"batch": "b7"}) {
		t.Errorf("th-01: %d %v", code1, d)
	}
	if c, _ := getDevice(t, url, "th-03"); c != 200 {
		t.Errorf("th-03: %d", c)
	}
	if c, _ := getDevice(t, url, "th-02"); c != 404 {
		t.Errorf("th-02 (malformed): %d", c)
	}
	if b, err := os.ReadFile(tokens); err != nil || !strings.Contains(string(b), "th-01,") || !strings.Contains(string(b), "th-03,") {
		t.Errorf("tokens file: %q %v", b, err)
	}

	// Alibaba batch file, detected from its header; a row the server
	// refuses (the device exists: 409) and malformed rows are one list,
	// in line order; the device's credentials sign.
	aliyun := filepath.Join(dir, "aliyun.csv")
	body = "ProductKey,DeviceName,DeviceSecret\n" +
		"a1B2c3D4e5F,lamp-0001,s3cr3t-lamp-0001\n" +
		"a1B2c3D4e5F,lamp-0002,\"s3cr3t-lamp-0002\",x\n" +
		"a1B2c3D4e5F,lamp-0003,s3cr3t-lamp-0003\n" +
		"a1B2c3D4e5F,lamp-0001,s3cr3t-lamp-dup\n"
	if err := os.WriteFile(aliyun, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runImportCLI(t, "import", "--server", url, "--param", "regionId=cn-hangzhou", aliyun)
	if code != exitError || !strings.Contains(out, "4 rows from line 1: 2 created, 0 updated, 2 failed") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// Run again: the two written answer 409, the file's own faults stay.
	code, out, errs = runImportCLI(t, "import", "--server", url, "--param", "regionId=cn-hangzhou", aliyun)
	want := "failed lines (first 4 of 4):\n" +
		"  line 2 (a1B2c3D4e5F.lamp-0001): 409 the device already exists\n" +
		"  line 3: 4 fields, the header has 3\n" +
		"  line 4 (a1B2c3D4e5F.lamp-0003): 409 the device already exists\n" +
		"  line 5 (a1B2c3D4e5F.lamp-0001): the id is on line 2 already\n"
	if code != exitError || !strings.Contains(out, "4 rows from line 1: 0 created, 0 updated, 4 failed") || !strings.Contains(out, want) {
		t.Errorf("second run: exit %d\n%s\nwant\n%s", code, out, want)
	}
	if strings.Contains(out+errs, "s3cr3t") || strings.Contains(out+errs, "c2VjcmV0") {
		t.Errorf("a secret in the output:\n%s%s", out, errs)
	}
	if c, d := getDevice(t, url, "a1B2c3D4e5F.lamp-0003"); c != 200 || !reflect.DeepEqual(d["params"],
		map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": "lamp-0003", "regionId": "cn-hangzhou"}) {
		t.Errorf("lamp-0003: %d %v", c, d)
	}
	req, _ := http.NewRequest("POST", url+"/v1/devices/a1B2c3D4e5F.lamp-0003/credentials", nil)
	req.Header.Set("Authorization", "Bearer "+importAdmin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cred struct{ Host, Username string }
	_ = json.NewDecoder(res.Body).Decode(&cred)
	res.Body.Close()
	if res.StatusCode != 200 || cred.Host != "a1B2c3D4e5F.iot-as-mqtt.cn-hangzhou.aliyuncs.com" || cred.Username != "lamp-0003&a1B2c3D4e5F" {
		t.Errorf("credentials: %d %+v", res.StatusCode, cred)
	}

	// Huawei template saved as CSV, device id from product and node id,
	// --from-line skips the rows before it.
	huawei := filepath.Join(dir, "huawei.csv")
	body = "node_id,product_id,secret\r\nvalve-01,64f0c3a1b2,s3cr3t-valve-01\r\nvalve-02,64f0c3a1b2,s3cr3t-valve-02\r\n"
	if err := os.WriteFile(huawei, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runImportCLI(t, "import", "--server", url, "--from-line", "3", "--param", "checkTimestamp=false", huawei)
	if code != exitOK || !strings.Contains(out, "1 rows from line 3: 1 created, 0 updated, 0 failed") {
		t.Errorf("huawei: exit %d\n%s%s", code, out, errs)
	}
	if c, d := getDevice(t, url, "64f0c3a1b2_valve-02"); c != 200 || !reflect.DeepEqual(d["params"],
		map[string]any{"deviceId": "64f0c3a1b2_valve-02", "checkTimestamp": false}) {
		t.Errorf("valve-02: %d %v", c, d)
	}
	if c, _ := getDevice(t, url, "64f0c3a1b2_valve-01"); c != 404 {
		t.Errorf("valve-01 before --from-line: %d", c)
	}

	// A sheet with node ids only: the product id comes from --param, read
	// from stdin.
	code, out, errs = runImportStdin(t, "node_id,secret\nvalve-09,s3cr3t-valve-09\n",
		"import", "--server", url, "--format", "huawei-csv", "--param", "productId=64f0c3a1b2", "-")
	if code != exitOK || !strings.Contains(out, "-: 1 rows from line 1: 1 created") {
		t.Errorf("huawei from stdin: exit %d\n%s%s", code, out, errs)
	}
	if c, d := getDevice(t, url, "64f0c3a1b2_valve-09"); c != 200 || !reflect.DeepEqual(d["params"],
		map[string]any{"deviceId": "64f0c3a1b2_valve-09"}) {
		t.Errorf("valve-09: %d %v", c, d)
	}
}

// runImportStdin runs credsign with stdin, the token in CREDSIGN_TOKEN.
func runImportStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("CREDSIGN_TOKEN", importAdmin)
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// TestImportConsoleCSVUsage: a CSV that cannot be read as its format, or
// flags that do not fit it, exit 2 with one line and send nothing.
func TestImportConsoleCSVUsage(t *testing.T) {
	write := func(name, body string) string { return testutil.WriteFile(t, name, []byte(body)) }
	aliyun := write("a.csv", "ProductKey,DeviceName,DeviceSecret\npk1,dev-0001,s3cr3t-1\n")
	ndjson := write("f.ndjson", aliyunLine("u-1", "secret-u1")+"\n")
	zh := write("zh.csv", "设备名称,设备密钥\ndev-01,c2VjcmV0\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown format", []string{"import", "--format", "aws-csv", aliyun}, "--format is ndjson or one of aliyun-csv"},
		{"param with ndjson", []string{"import", "--format", "ndjson", "--param", "a=b", ndjson}, "for console CSV files"},
		{"param, not a header", []string{"import", "--label", "a=b", ndjson}, "is not the header of a console CSV file"},
		{"not k=v", []string{"import", "--param", "regionId", aliyun}, "--param wants k=v"},
		{"twice", []string{"import", "--param", "a=1", "--param", "a=2", aliyun}, "--param a given twice"},
		{"unknown param", []string{"import", "--server", "http://127.0.0.1:1", "--param", "region=x", aliyun}, "aliyun has no such param"},
		{"not an integer", []string{"import", "--server", "http://127.0.0.1:1", "--param", "port=x", aliyun}, `"x" is not an integer`},
		{"param is a column", []string{"import", "--server", "http://127.0.0.1:1", "--param", "productKey=x", aliyun}, "productKey is a column of the file"},
		{"no product", []string{"import", "--server", "http://127.0.0.1:1", "--format", "tencent-csv", zh}, "no productId column: give it as a param"},
		{"bad template", []string{"import", "--server", "http://127.0.0.1:1", "--id-template", "{deviceName", aliyun}, "a '{' without its '}'"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantUsageLine(t, tc.want, tc.args...) })
	}
}
