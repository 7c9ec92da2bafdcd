package consolecsv

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/credsign/credsign/secrets"
)

// want is what one row must become: a device (id, params, secret) or an
// error whose text holds errPart.
type want struct {
	line    int64
	id      string
	params  map[string]any
	secret  string
	errPart string
}

func readAll(t *testing.T, r io.Reader, opts Options) ([]Row, *Reader) {
	t.Helper()
	rd, err := NewReader(r, opts)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	var rows []Row
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rows, rd
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		rows = append(rows, row)
		if len(rows) > 1000 {
			t.Fatal("no end")
		}
	}
}

func TestSamples(t *testing.T) {
	const pk = "a1B2c3D4e5F"
	tests := []struct {
		file       string
		opts       Options
		wantFormat string
		rows       []want
		// secrets that must not appear in any error text
		secrets []string
	}{
		{
			file: "aliyun-batch.csv", wantFormat: "aliyun-csv",
			opts: Options{Params: map[string]any{"regionId": "cn-shanghai"}},
			rows: []want{
				{line: 2, id: pk + ".lamp-0001", params: map[string]any{"productKey": pk, "deviceName": "lamp-0001", "regionId": "cn-shanghai"}, secret: "3Yh2vN8kQw5ZpL0xRt7mJc1bVf6sDg9A"},
				{line: 3, id: pk + ".lamp-0002", params: map[string]any{"productKey": pk, "deviceName": "lamp-0002", "regionId": "cn-shanghai"}, secret: "9kLm3Nq7Rs1Tv5Wx8Yz2Ab4Cd6Ef0Gh"},
				{line: 4, errPart: "line 4: 2 fields, the header has 3"},
				{line: 5, errPart: "line 5 (" + pk + ".lamp-0004): no secret"},
				{line: 6, errPart: "line 6 (" + pk + ".lamp-0001): the id is on line 2 already"},
				{line: 7, errPart: "line 7: deviceName is not a DeviceName"},
				{line: 9, id: pk + ".sensor_0007", params: map[string]any{"productKey": pk, "deviceName": "sensor@0007", "regionId": "cn-shanghai"}, secret: "Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8Ii9Jj0Kk"},
				{line: 10, id: pk + ".lamp-0008", params: map[string]any{"productKey": pk, "deviceName": "lamp-0008", "regionId": "cn-shanghai"}, secret: "Qq1Ww2Ee3Rr4Tt5Yy6Uu7Ii8Oo9Pp0Ll"},
			},
			secrets: []string{"Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp", "Mm1Nn2Bb3Vv4Cc5Xx6Zz7Ll8Kk9Jj0Hh"},
		},
		{
			file: "aliyun-template-zh.csv", wantFormat: "aliyun-csv",
			opts: Options{Format: "aliyun-csv", Params: map[string]any{"productKey": pk, "instanceId": "iot-06z00ax1o4qkxyz"}, Labels: map[string]string{"batch": "b7"}, IDTemplate: "{deviceName}"},
			rows: []want{
				{line: 2, id: "gate-0001", params: map[string]any{"productKey": pk, "deviceName": "gate-0001", "instanceId": "iot-06z00ax1o4qkxyz"}, secret: "Pp0Oo9Ii8Uu7Yy6Tt5Rr4Ee3Ww2Qq1Aa"},
				{line: 3, id: "gate-0002", params: map[string]any{"productKey": pk, "deviceName": "gate-0002", "instanceId": "iot-06z00ax1o4qkxyz"}, secret: "Ll0Kk9Jj8Hh7Gg6Ff5Dd4Ss3Aa2Zz1Xx"},
				{line: 4, errPart: "line 4: not CSV: extraneous or missing \" in quoted-field; lines 4 to 5 were read as this row"},
			},
			secrets: []string{"Cc0Vv9Bb8Nn7Mm6", "Uu0Ii9Oo8Pp7Aa6Ss5Dd4Ff3Gg2Hh1Jj"},
		},
		{
			file: "tencent-batch.csv", wantFormat: "tencent-csv",
			rows: []want{
				{line: 2, id: "LJ0INDNU7U.dev-01", params: map[string]any{"productId": "LJ0INDNU7U", "deviceName": "dev-01"}, secret: "dvFeQr1zhBS2CDyYlN31XA=="},
				{line: 3, errPart: "line 3 (LJ0INDNU7U.dev-02): no secret"},
				{line: 4, errPart: "line 4: deviceName is not a DeviceName"},
				{line: 5, errPart: "line 5 (LJ0INDNU7U.dev-04): the secret is not a base64 PSK"},
				{line: 6, id: "LJ0INDNU7U.dev-05", params: map[string]any{"productId": "LJ0INDNU7U", "deviceName": "dev-05"}, secret: "MDEyMzQ1Njc4OWFiY2RlZg=="},
				{line: 7, errPart: "line 7: not CSV: bare \" in non-quoted-field"},
			},
			secrets: []string{"c2VjcmV0LXBzay0wMw==", "not*base64", "a2V5"},
		},
		{
			file: "tencent-batch-zh.csv", wantFormat: "tencent-csv",
			opts: Options{Format: "tencent-csv", Params: map[string]any{"productId": "9KX2P7QDRF", "sdkAppId": "21010406"}},
			rows: []want{
				{line: 2, errPart: "line 2: deviceName is not a DeviceName"},
				{line: 3, id: "9KX2P7QDRF.thermo-2", params: map[string]any{"productId": "9KX2P7QDRF", "deviceName": "thermo-2", "sdkAppId": "21010406"}, secret: "c2VjcmV0LXBzay0wMg=="},
				{line: 4, errPart: "line 4: 3 fields, the header has 2"},
			},
			secrets: []string{"c2VjcmV0LXBzay0wMQ==", "c2VjcmV0LXBzay0wMw=="},
		},
		{
			file: "tencent-batch-gbk.csv", wantFormat: "tencent-csv",
			opts: Options{Format: "tencent-csv", Params: map[string]any{"productId": "9KX2P7QDRF"}},
			rows: []want{
				{line: 2, id: "9KX2P7QDRF.thermo-gbk-1", params: map[string]any{"productId": "9KX2P7QDRF", "deviceName": "thermo-gbk-1"}, secret: "c2VjcmV0LXBzay0wMQ=="},
				{line: 3, id: "9KX2P7QDRF.thermo-gbk-2", params: map[string]any{"productId": "9KX2P7QDRF", "deviceName": "thermo-gbk-2"}, secret: "c2VjcmV0LXBzay0wMg=="},
				{line: 4, errPart: "line 4: column 3 is not GBK text like the header"},
			},
			secrets: []string{"c2VjcmV0LXBzay0wMw=="},
		},
		{
			file: "huawei-batch.csv", wantFormat: "huawei-csv",
			opts: Options{Params: map[string]any{"host": "a1b2c3.st1.iotda-device.cn-north-4.myhuaweicloud.com"}},
			rows: []want{
				{line: 2, id: "5ba24f5ebbe8f56f5a14f605_meter-001", params: map[string]any{"deviceId": "5ba24f5ebbe8f56f5a14f605_meter-001", "host": "a1b2c3.st1.iotda-device.cn-north-4.myhuaweicloud.com"}, secret: "s3cr3t-Meter-001"},
				{line: 3, id: "5ba24f5ebbe8f56f5a14f605_meter-002", params: map[string]any{"deviceId": "5ba24f5ebbe8f56f5a14f605_meter-002", "host": "a1b2c3.st1.iotda-device.cn-north-4.myhuaweicloud.com"}, secret: "s3cr3t-Meter-002"},
				{line: 4, errPart: "line 4 (5ba24f5ebbe8f56f5a14f605_meter-003): no secret"},
				{line: 5, errPart: "line 5 (5ba24f5ebbe8f56f5a14f605_meter-001): the id is on line 2 already"},
			},
			secrets: []string{"s3cr3t-Meter-004"},
		},
		{
			file: "huawei-batch-zh.csv", wantFormat: "huawei-csv",
			rows: []want{
				{line: 2, id: "64f0c3a1b2_valve-01", params: map[string]any{"deviceId": "64f0c3a1b2_valve-01"}, secret: "s3cr3t-Valve-01"},
				{line: 3, errPart: "line 3: no deviceId"},
				{line: 4, errPart: "line 4 (64f0c3a1b2_valve-03): no secret"},
			},
			secrets: []string{"s3cr3t-Valve-02"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			fh, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			rows, rd := readAll(t, fh, tt.opts)
			if rd.Format().Name != tt.wantFormat {
				t.Errorf("format %s, want %s", rd.Format().Name, tt.wantFormat)
			}
			if len(rows) != len(tt.rows) {
				for _, r := range rows {
					t.Logf("row %d %s %v", r.Line, r.JSON, r.Err)
				}
				t.Fatalf("%d rows, want %d", len(rows), len(tt.rows))
			}
			for i, w := range tt.rows {
				r := rows[i]
				if r.Line != w.line {
					t.Errorf("row %d: line %d, want %d", i, r.Line, w.line)
				}
				if w.errPart != "" {
					if r.Err == nil || !strings.Contains(r.Err.Error(), w.errPart) {
						t.Errorf("line %d: error %v, want one with %q (json %s)", w.line, r.Err, w.errPart, r.JSON)
					}
					if r.JSON != nil {
						t.Errorf("line %d: a document with an error", w.line)
					}
					continue
				}
				if r.Err != nil {
					t.Errorf("line %d: %v", w.line, r.Err)
					continue
				}
				var d secrets.Device // the line is a device document
				if err := json.Unmarshal(r.JSON, &d); err != nil {
					t.Fatalf("line %d: %v: %s", w.line, err, r.JSON)
				}
				if d.ID != w.id || r.ID != w.id || d.Cloud != strings.TrimSuffix(tt.wantFormat, "-csv") || d.Secret != w.secret {
					t.Errorf("line %d: id %q/%q cloud %q secret %q; want %q, secret %q", w.line, d.ID, r.ID, d.Cloud, d.Secret, w.id, w.secret)
				}
				if !reflect.DeepEqual(d.Params, w.params) {
					t.Errorf("line %d: params %v, want %v", w.line, d.Params, w.params)
				}
				if !reflect.DeepEqual(d.Labels, tt.opts.Labels) && (len(d.Labels) > 0 || len(tt.opts.Labels) > 0) {
					t.Errorf("line %d: labels %v, want %v", w.line, d.Labels, tt.opts.Labels)
				}
			}
			for _, r := range rows {
				if r.Err == nil {
					continue
				}
				for _, s := range tt.secrets {
					if strings.Contains(r.Err.Error(), s) {
						t.Errorf("line %d: the error holds a secret: %v", r.Line, r.Err)
					}
				}
			}
		})
	}
}

// TestHeaderVariants: the same columns under the names the pages and
// consoles use, in any order, are one layout; detection needs one fit.
func TestHeaderVariants(t *testing.T) {
	tests := []struct {
		header string
		format string // detected; "" none
	}{
		{"ProductKey,DeviceName,DeviceSecret", "aliyun-csv"},
		{"deviceSecret,product_key,device name", "aliyun-csv"},
		{"\ufeffProductKey,DeviceName,DeviceSecret", "aliyun-csv"},
		{"产品Key,设备名称,DeviceSecret", "aliyun-csv"},
		{"ProductId,DeviceName,DevicePsk", "tencent-csv"},
		{"device_name,psk", "tencent-csv"},
		{"node_id,device_id,product_id,secret", "huawei-csv"},
		{"密钥,设备标识码,产品ID", "huawei-csv"},
		{"Device ID,Secret", "huawei-csv"},
		{"\xc9\xe8\xb1\xb8\xc3\xfb\xb3\xc6,devicepsk", "tencent-csv"}, // 设备名称 in GBK
		{"设备名称,设备密钥", ""},                                             // aliyun or tencent: give --format
		{"ProductKey,device_id,secret", ""},                           // aliyun and huawei
		{`{"id":"lamp-1","cloud":"aliyun"}`, ""},
		{"id,token", ""},
	}
	for _, tt := range tests {
		if got := Detect(tt.header); got != tt.format {
			t.Errorf("Detect(%q) = %q, want %q", tt.header, got, tt.format)
		}
	}
}

func TestNewReaderErrors(t *testing.T) {
	tests := []struct {
		name, file string
		opts       Options
		err        string
	}{
		{"empty", "", Options{}, "the file is empty"},
		{"unknown", "a,b\n1,2\n", Options{}, "not that of a known console"},
		{"ambiguous", "ProductKey,device_id,secret\nx,y,z\n", Options{}, "fits aliyun-csv and huawei-csv"},
		{"not distinctive", "设备名称,设备密钥\nx,y\n", Options{}, "not that of a known console"},
		{"no secret column", "ProductKey,DeviceName\n", Options{Format: "aliyun-csv"}, "no secret column"},
		{"no product", "DeviceName,DeviceSecret\n", Options{Format: "aliyun-csv"}, "no productKey column: give it as a param"},
		{"param and column", "ProductKey,DeviceName,DeviceSecret\n", Options{Params: map[string]any{"productKey": "x"}}, "productKey is a column of the file"},
		{"two secret columns", "ProductKey,DeviceName,DeviceSecret,设备密钥\n", Options{}, "both hold the secret"},
		{"huawei without id", "node_id,secret\n", Options{Format: "huawei-csv"}, "no deviceId column"},
		{"bad template", "ProductKey,DeviceName,DeviceSecret\n", Options{IDTemplate: "{deviceName"}, "a '{' without its '}'"},
		{"secret in template", "ProductKey,DeviceName,DeviceSecret\n", Options{IDTemplate: "x-{secret}"}, "the secret cannot be part of the id"},
		{"unknown format", "a\n", Options{Format: "aws-csv"}, "unknown format"},
		{"header neither utf-8 nor gbk", "\xffabc,DeviceSecret,ProductKey\n", Options{}, "neither UTF-8 nor GBK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tt.file), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one with %q", err, tt.err)
			}
		})
	}
}

// TestIDTemplate: placeholders, {line}, folding to the id syntax, and ids
// that cannot be made.
func TestIDTemplate(t *testing.T) {
	file := "ProductKey,DeviceName,DeviceSecret\npk1,dev:one@x,s1\npk1,dev-two,s2\n"
	tests := []struct {
		tmpl string
		ids  []string
		err  string
	}{
		{"", []string{"pk1.dev:one_x", "pk1.dev-two"}, ""},
		{"{deviceName}", []string{"dev:one_x", "dev-two"}, ""},
		{"f7-{line}-{deviceName}", []string{"f7-2-dev:one_x", "f7-3-dev-two"}, ""},
		{"site/{regionId}/{deviceName}", []string{"site_cn-shanghai_dev:one_x", "site_cn-shanghai_dev-two"}, ""},
		{"_{deviceName}", nil, "the device id made by the id template is not valid"},
		{"{nodeId}", nil, "the id template needs nodeId"},
		{strings.Repeat("x", 125) + "{deviceName}", nil, "at most 128"},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			rows, _ := readAll(t, strings.NewReader(file), Options{IDTemplate: tt.tmpl, Params: map[string]any{"regionId": "cn-shanghai"}})
			for i, r := range rows {
				if tt.err != "" {
					if r.Err == nil || !strings.Contains(r.Err.Error(), tt.err) {
						t.Errorf("row %d: %v, want %q", i, r.Err, tt.err)
					}
					continue
				}
				if r.Err != nil || r.ID != tt.ids[i] {
					t.Errorf("row %d: id %q err %v, want %q", i, r.ID, r.Err, tt.ids[i])
				}
			}
		})
	}
}

// TestLazy: rows come one at a time from a stream that is not all there
// yet (a pipe written a row at a time).
func TestLazy(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "ProductKey,DeviceName,DeviceSecret\n")
	}()
	rd, err := NewReader(pr, Options{}) // the header alone is enough
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = io.WriteString(pw, "pk1,dev-0001,s1\n")
	}()
	row, err := rd.Next()
	if err != nil || row.ID != "pk1.dev-0001" {
		t.Fatalf("first row %+v %v", row, err)
	}
	go func() {
		_, _ = io.WriteString(pw, "pk1,dev-0002,s2\n")
		_ = pw.Close()
	}()
	if row, err = rd.Next(); err != nil || row.ID != "pk1.dev-0002" {
		t.Fatalf("second row %+v %v", row, err)
	}
	if _, err = rd.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

// FuzzReader: any bytes give rows or errors, never a panic; every row is
// a device document that decodes, with a valid id, or an error naming a
// line; no error text holds the secret of its row.
func FuzzReader(f *testing.F) {
	for _, name := range []string{"aliyun-batch.csv", "tencent-batch.csv", "huawei-batch.csv", "huawei-batch-zh.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("ProductKey,DeviceName,DeviceSecret\n\"a,\"b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rd, err := NewReader(strings.NewReader(string(b)), Options{Params: map[string]any{}})
		if err != nil {
			return
		}
		for n := 0; ; n++ {
			row, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if n > len(b)+1 {
				t.Fatal("more rows than bytes")
			}
			if row.Line < 2 {
				t.Fatalf("row on line %d", row.Line)
			}
			if row.Err != nil {
				if row.JSON != nil {
					t.Fatal("a document and an error")
				}
				continue
			}
			var d struct {
				ID     string         `json:"id"`
				Params map[string]any `json:"params"`
				Secret string         `json:"secret"`
			}
			if err := json.Unmarshal(row.JSON, &d); err != nil {
				t.Fatalf("row %d: %v", row.Line, err)
			}
			if !validID.MatchString(d.ID) || d.Secret == "" {
				t.Fatalf("row %d: id %q secret empty %v", row.Line, d.ID, d.Secret == "")
			}
		}
	})
}

// FuzzNoSecretInErrors: the value of a row's secret column never shows
// in the row's error, whatever the rows around it hold. The body's
// "SECRET" stands for the fuzzed secret; an independent encoding/csv
// parse says which value each line's secret column holds.
func FuzzNoSecretInErrors(f *testing.F) {
	f.Add("pk1,dev-0001,SECRET\npk1,dev-0001,SECRET\n", "SeCrEt7f3a9c1e5b")
	f.Add("pk1,ab,SECRET\n\"pk1\",\"dev-0002\",\"SECRET\"x\n", "Zz9Yy8Xx7Ww6Vv5U")
	f.Add("pk1,dev-0003,SECRET,extra\n,dev-0004,SECRET\npk1,dev-0005,\" SECRET\"\n", "a1B2c3D4e5F6g7H8")
	secretShape := regexp.MustCompile(`^[A-Za-z0-9+/=]{8,64}$`)
	f.Fuzz(func(t *testing.T, body, secret string) {
		if !secretShape.MatchString(secret) || !strings.ContainsAny(secret, "0123456789") ||
			strings.ToLower(secret) == secret || strings.ToUpper(secret) == secret {
			return
		}
		file := "ProductKey,DeviceName,DeviceSecret\n" + strings.ReplaceAll(body, "SECRET", secret)
		byLine := map[int64][]string{}
		cr := csv.NewReader(strings.NewReader(file))
		cr.FieldsPerRecord = -1
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					continue
				}
				break
			}
			l, _ := cr.FieldPos(0)
			byLine[int64(l)] = rec
		}
		rd, err := NewReader(strings.NewReader(file), Options{})
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n <= len(file); n++ {
			r, err := rd.Next()
			if err != nil {
				return
			}
			if r.Err == nil {
				continue
			}
			if strings.Contains(r.Err.Reason, secret) {
				t.Fatalf("the reason holds the secret: %v", r.Err)
			}
			rec := byLine[r.Line]
			if r.Err.ID == "" || len(rec) < 3 || len(rec[2]) < 8 {
				continue
			}
			if strings.Contains(r.Err.ID, rec[2]) && !strings.Contains(rec[0]+"\x00"+rec[1], rec[2]) {
				t.Fatalf("line %d: the id in the error holds the secret column: %v", r.Line, r.Err)
			}
		}
		t.Fatal("more rows than bytes")
	})
}
