package api

import (
	"strings"
	"testing"
)

// TestMediaTypesAreCaseInsensitive: a media type's type, subtype and
// parameter names are case-insensitive (RFC 9110 §8.3.1), so a body sent
// as Application/JSON is taken like one sent as application/json, and the
// stored result is the same.
func TestMediaTypesAreCaseInsensitive(t *testing.T) {
	e := newEnv(t, nil)
	prov := createProvisioner(t, e)
	dev := `{"cloud":"aliyun","params":{"productKey":"pk","deviceName":"d"},"secret":"aliyun-secret"}`
	for _, c := range []struct {
		name, method, path, ct, body string
		want                         int
	}{
		{"json", "PUT", "/v1/devices/mt-1", "Application/JSON", dev, 201},
		{"json with a parameter", "PUT", "/v1/devices/mt-2", "APPLICATION/json; Charset=UTF-8", dev, 201},
		{"merge patch", "PATCH", "/v1/devices/mt-1", "Application/Merge-Patch+JSON", `{"labels":{"site":"a"}}`, 200},
		{"lines", "POST", "/v1/imports", "Application/X-NDJSON", string(importLines(withID("aliyun", "mt-3"))), 200},
		{"another type", "PUT", "/v1/devices/mt-4", "Text/Plain", dev, 415},
	} {
		r := e.do(c.method, c.path, prov, c.body, "Content-Type", c.ct)
		mustStatus(t, r, c.want, c.name)
	}
	r := e.do("GET", "/v1/devices/mt-1", prov, nil)
	mustStatus(t, r, 200, "the device written as Application/JSON")
	if !strings.Contains(string(r.body), `"site":"a"`) {
		t.Errorf("the merge patch sent as Application/Merge-Patch+JSON was not applied: %s", r.body)
	}
	mustStatus(t, e.do("GET", "/v1/devices/mt-3", prov, nil), 200, "the device imported as Application/X-NDJSON")
	mustStatus(t, e.do("GET", "/v1/devices/mt-4", prov, nil), 404, "the device refused as Text/Plain")
}
