package api

import (
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHostileBodiesAreCheap sends device documents built to make a schema
// validator work hard (deep nesting, wide arrays and objects as a param
// value, in params, labels and unknown members) and checks each is refused
// quickly, with bounded memory, and changes nothing. Params are scalars by
// contract, wherever in the body the bulk sits.
func TestHostileBodiesAreCheap(t *testing.T) {
	e := newEnv(t, nil)
	wideArr := "[" + strings.Repeat("1,", 20000) + "1]"
	deep := strings.Repeat(`{"a":`, 3000) + "1" + strings.Repeat("}", 3000)
	deepArr := strings.Repeat(`[`, 9000) + strings.Repeat(`]`, 9000)
	doc := func(params, extra string) string {
		return `{"cloud":"huawei","params":` + params + `,"secret":"s3cret-value"` + extra + `}`
	}
	cases := []struct {
		name string
		body string
	}{
		{"deep param object", doc(`{"deviceId":`+deep+`}`, "")},
		{"deep param array", doc(`{"deviceId":`+deepArr+`}`, "")},
		{"wide param array", doc(`{"deviceId":`+wideArr+`}`, "")},
		{"wide param object", doc(`{"deviceId":`+wideObject(4000)+`}`, "")},
		{"many params", doc(wideObject(4000), "")},
		{"deep label", doc(`{"deviceId":"d"}`, `,"labels":{"a":`+deep+`}`)},
		{"wide labels", doc(`{"deviceId":"d"}`, `,"labels":`+wideObject(4000))},
		{"deep unknown member", doc(`{"deviceId":"d"}`, `,"zzz":`+deep)},
		{"wide unknown member", doc(`{"deviceId":"d"}`, `,"zzz":`+wideArr)},
	}
	for _, c := range cases {
		if len(c.body) > DefaultMaxBodyBytes {
			t.Fatalf("%s: body of %d bytes is over the cap; the test would not reach the validator", c.name, len(c.body))
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		r := e.do(http.MethodPut, "/v1/devices/hostile", testAdmin, c.body)
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if r.status != http.StatusUnprocessableEntity && r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400 or 422; body %s", c.name, r.status, r.body)
		}
		r.problem(t)
		// Generous bounds for a loaded CI machine under -race; the bug
		// this guards took seconds and gigabytes.
		if took > 2*time.Second {
			t.Errorf("%s: refused after %v", c.name, took)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Errorf("%s: %d MiB allocated to refuse a %d KiB body", c.name, alloc>>20, len(c.body)>>10)
		}
		t.Logf("%s: %d bytes, %d, %v", c.name, len(c.body), r.status, took)
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/devices/hostile", testAdmin, nil), http.StatusNotFound, "hostile device stored")
}
