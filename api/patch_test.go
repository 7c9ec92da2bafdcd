package api

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
)

// mergePatch is a request body sent as application/merge-patch+json by
// env.do.
type mergePatch string

// fields returns the field names of a problem body.
func fields(t *testing.T, r resp) []string {
	t.Helper()
	var out []string
	p := r.problem(t)
	errs, _ := p["errors"].([]any)
	for _, e := range errs {
		out = append(out, e.(map[string]any)["field"].(string))
	}
	return out
}

type apiDeviceDoc struct {
	ID              string
	Cloud           string
	Group           string
	Params          map[string]any
	Labels          map[string]string
	SecretVersion   int64
	SecretRotatedAt *time.Time
	Version         int64
}

func TestPatchDevice(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/v1/devices/aliyun-1", f.prov, nil)
	tag := r.header.Get("ETag")
	var before apiDeviceDoc
	r.json(t, &before)
	unchanged := func(what string) {
		t.Helper()
		r := f.do("GET", "/v1/devices/aliyun-1", f.prov, nil)
		if got := r.header.Get("ETag"); got != tag {
			t.Fatalf("%s: the device changed (ETag %s, was %s)", what, got, tag)
		}
	}
	refusals := []struct {
		name   string
		body   any
		hdr    []string
		status int
		fields []string
	}{
		{"json media type", `{"labels":{"a":"b"}}`, nil, 415, nil},
		{"stale If-Match", mergePatch(`{"labels":{"a":"b"}}`), []string{"If-Match", `"9.1"`}, 412, nil},
		{"the secret", mergePatch(`{"secret":"aliyun-secret-new"}`), nil, 422, []string{"secret"}},
		{"unknown member", mergePatch(`{"colour":"red"}`), nil, 422, []string{"colour"}},
		{"empty patch", mergePatch(`{}`), nil, 422, nil},
		{"a cloud whose params the device lacks", mergePatch(`{"cloud":"tencent"}`), nil, 422, []string{"params.productId"}},
		{"a cloud that refuses the secret's format", mergePatch(`{"cloud":"azure","params":{"productKey":null,"deviceName":null,"hubHost":"h.azure-devices.net","deviceId":"d"}}`), nil, 422, []string{"secret"}},
		{"a required param removed", mergePatch(`{"params":{"productKey":null}}`), nil, 422, []string{"params.productKey"}},
		{"a bad label key", mergePatch(`{"labels":{"-x":"y"}}`), nil, 422, []string{"labels"}},
		{"no such group", mergePatch(`{"group":"nope"}`), nil, 422, []string{"group"}},
		{"a label of the wrong type", mergePatch(`{"labels":{"a":1}}`), nil, 422, nil},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do("PATCH", "/v1/devices/aliyun-1", f.prov, tc.body, tc.hdr...)
			mustStatus(t, r, tc.status, tc.name)
			got := fields(t, r)
			for _, want := range tc.fields {
				if !slices.Contains(got, want) {
					t.Errorf("problem names %v, want %s: %s", got, want, r.body)
				}
			}
			for _, s := range f.secrets {
				if strings.Contains(string(r.body), s) {
					t.Fatalf("the problem quotes a secret: %s", r.body)
				}
			}
			unchanged(tc.name)
		})
	}
	mustStatus(t, f.do("PATCH", "/v1/devices/ghost", f.prov, mergePatch(`{"labels":{"a":"b"}}`)), 404, "no such device")

	// Relabel with If-Match: one label set, one removed, the rest kept.
	r = f.do("PATCH", "/v1/devices/aliyun-1", f.prov, mergePatch(`{"labels":{"row":"3","site":null}}`), "If-Match", tag)
	mustStatus(t, r, 200, "relabel")
	var got apiDeviceDoc
	r.json(t, &got)
	if !maps.Equal(got.Labels, map[string]string{"row": "3"}) || got.Cloud != "aliyun" || got.Params["productKey"] != before.Params["productKey"] ||
		got.SecretVersion != 1 || got.Version != before.Version+1 {
		t.Fatalf("after relabel: %+v", got)
	}
	if r.header.Get("ETag") == tag {
		t.Fatal("the ETag did not change")
	}
	mustStatus(t, f.do("PATCH", "/v1/devices/aliyun-1", f.prov, mergePatch(`{"labels":{"x":"y"}}`), "If-Match", tag), 412, "the old ETag again")
	// The secret was kept: the device still signs, with the same secret.
	cr := f.do("POST", "/v1/devices/aliyun-1/credentials", f.dev, nil)
	mustStatus(t, cr, 200, "credentials after the patch")
	var triple struct{ ClientID, Username, Password string }
	cr.json(t, &triple)
	dr := f.do("POST", "/v1/devices/aliyun-1/doctor", f.prov, map[string]any{"clientId": triple.ClientID, "username": triple.Username, "password": triple.Password})
	mustStatus(t, dr, 200, "doctor")
	if !strings.Contains(string(dr.body), `"match":true`) {
		t.Fatalf("doctor after the patch: %s", dr.body)
	}

	// Move a device into a group and out again; its own secret stays.
	r = f.do("PATCH", "/v1/devices/azure-1", f.prov, mergePatch(`{"group":"grp"}`))
	mustStatus(t, r, 422, "into a group whose template gives deviceId, keeping another deviceId")
	if got := fields(t, r); !slices.Contains(got, "params.deviceId") {
		t.Fatalf("problem names %v, want params.deviceId", got)
	}
	r = f.do("PATCH", "/v1/devices/azure-1", f.prov, mergePatch(`{"group":"grp","params":{"deviceId":null}}`))
	mustStatus(t, r, 200, "into the group")
	got = apiDeviceDoc{}
	r.json(t, &got)
	if got.Group != "grp" || got.Params["deviceId"] != "azure-1" || got.Params["hubHost"] != "myhub.azure-devices.net" {
		t.Fatalf("after moving into grp: %+v", got)
	}
	r = f.do("PATCH", "/v1/devices/azure-1", f.prov, mergePatch(`{"group":null}`))
	mustStatus(t, r, 200, "out of the group")
	got = apiDeviceDoc{}
	r.json(t, &got)
	if got.Group != "" || got.Params["deviceId"] != "azure-1" {
		t.Fatalf("after leaving grp: %+v", got)
	}
	mustStatus(t, f.do("POST", "/v1/devices/azure-1/credentials", f.prov, nil), 200, "credentials with its own secret")
	if logs := f.logs.String(); !strings.Contains(logs, `"event":"device.patched"`) {
		t.Errorf("no device.patched audit event in %s", logs)
	}
}

func TestPatchGroup(t *testing.T) {
	f := newFixture(t)
	r := f.do("PATCH", "/v1/groups/grp", f.prov, mergePatch(`{"labels":{"owner":"team-b","fleet":null}}`))
	mustStatus(t, r, 200, "relabel the group")
	var g struct {
		Labels  map[string]string
		Params  map[string]any
		Version int64
	}
	r.json(t, &g)
	if !maps.Equal(g.Labels, map[string]string{"owner": "team-b"}) || g.Params["deviceId"] != "{deviceId}" || g.Version != 2 {
		t.Fatalf("after the patch: %+v", g)
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
	}{
		{"the secret", mergePatch(`{"secret":"x"}`), 422},
		{"json media type", `{"labels":{}}`, 415},
		{"the identity template", mergePatch(`{"params":{"deviceId":"x-{deviceId}"}}`), 409},
		{"an unknown cloud", mergePatch(`{"cloud":"nocloud"}`), 422},
	} {
		r := f.do("PATCH", "/v1/groups/grp", f.prov, tc.body)
		mustStatus(t, r, tc.status, tc.name)
		if strings.Contains(string(r.body), testGroupKey) {
			t.Fatalf("%s: the problem quotes the group key", tc.name)
		}
	}
	r = f.do("GET", "/v1/groups/grp", f.prov, nil)
	r.json(t, &g)
	if g.Version != 2 {
		t.Fatalf("a refused patch wrote the group: version %d", g.Version)
	}
	// The group key was kept: a device of the group still enrols and signs.
	r = f.do("POST", "/v1/enrol", f.enrol, map[string]any{"deviceId": "after-patch"})
	mustStatus(t, r, 201, "enrol after the patch")
	mustStatus(t, f.do("POST", "/v1/devices/after-patch/credentials", f.prov, nil), 200, "credentials of a device of the patched group")
	mustStatus(t, f.do("PATCH", "/v1/groups/none", f.prov, mergePatch(`{"labels":{"a":"b"}}`)), 404, "no such group")
}

func TestRotateSecret(t *testing.T) {
	f := newFixture(t)
	issue := func(what string) map[string]any {
		t.Helper()
		r := f.do("POST", "/v1/devices/aliyun-1/credentials", f.dev, nil)
		mustStatus(t, r, 200, what)
		var c map[string]any
		r.json(t, &c)
		return map[string]any{"clientId": c["clientId"], "username": c["username"], "password": c["password"]}
	}
	doctor := func(triple map[string]any) (match bool, secret string) {
		t.Helper()
		r := f.do("POST", "/v1/devices/aliyun-1/doctor", f.prov, triple)
		mustStatus(t, r, 200, "doctor")
		var d struct {
			Match         bool
			Secret        string
			SecretVersion int64
		}
		r.json(t, &d)
		return d.Match, d.Secret
	}
	old := issue("credentials before")
	if m, s := doctor(old); !m || s != "current" {
		t.Fatalf("doctor before the rotation: match %t secret %q", m, s)
	}
	r := f.do("GET", "/v1/devices/aliyun-1", f.prov, nil)
	tag := r.header.Get("ETag")
	const newSecret = "aliyun-secret-rotated-5e8a1f"
	for _, tc := range []struct {
		name   string
		body   any
		hdr    []string
		status int
	}{
		{"the current secret", map[string]any{"secret": devices()["aliyun"]["secret"]}, nil, 422},
		{"a stale If-Match", map[string]any{"secret": newSecret}, []string{"If-Match", `"9.1"`}, 412},
		{"a trailing newline", map[string]any{"secret": newSecret + "\n"}, nil, 422},
		{"no secret", map[string]any{}, nil, 422},
		{"another member", map[string]any{"secret": newSecret, "labels": map[string]any{}}, nil, 422},
	} {
		r := f.do("PUT", "/v1/devices/aliyun-1/secret", f.prov, tc.body, tc.hdr...)
		mustStatus(t, r, tc.status, tc.name)
		if strings.Contains(string(r.body), newSecret) || strings.Contains(string(r.body), devices()["aliyun"]["secret"].(string)) {
			t.Fatalf("%s: the problem quotes a secret: %s", tc.name, r.body)
		}
		if got := f.do("GET", "/v1/devices/aliyun-1", f.prov, nil).header.Get("ETag"); got != tag {
			t.Fatalf("%s: the device changed", tc.name)
		}
	}
	mustStatus(t, f.do("PUT", "/v1/devices/ghost/secret", f.prov, map[string]any{"secret": newSecret}), 404, "no such device")

	start := time.Now().Add(-time.Second)
	r = f.do("PUT", "/v1/devices/aliyun-1/secret", f.prov, map[string]any{"secret": newSecret}, "If-Match", tag)
	mustStatus(t, r, 200, "rotate")
	var d apiDeviceDoc
	r.json(t, &d)
	if d.SecretVersion != 2 || d.SecretRotatedAt == nil || d.SecretRotatedAt.Before(start) || r.header.Get("ETag") == tag {
		t.Fatalf("after the rotation: %+v, ETag %s (was %s)", d, r.header.Get("ETag"), tag)
	}
	if strings.Contains(string(r.body), newSecret) {
		t.Fatal("the answer holds the secret")
	}
	// The device token still works; the credentials are the new secret's.
	fresh := issue("credentials after, with the same device token")
	if fresh["password"] == old["password"] {
		t.Fatal("the password did not change")
	}
	if m, s := doctor(fresh); !m || s != "current" {
		t.Fatalf("doctor on the new triple: match %t secret %q", m, s)
	}
	if m, s := doctor(old); !m || s != "previous" {
		t.Fatalf("doctor on the triple of the old secret: match %t secret %q, want a match with the previous secret", m, s)
	}
	// A second rotation: the first secret is forgotten.
	mustStatus(t, f.do("PUT", "/v1/devices/aliyun-1/secret", f.prov, map[string]any{"secret": newSecret + "-2"}), 200, "rotate again")
	if m, _ := doctor(old); m {
		t.Fatal("the secret of two rotations ago still matches")
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"event":"secret.rotated"`) {
		t.Errorf("no secret.rotated audit event")
	}
	for _, s := range []string{newSecret, devices()["aliyun"]["secret"].(string)} {
		if strings.Contains(logs, s) || strings.Contains(f.bodies.String(), s) {
			t.Fatalf("a secret is in the logs or a response")
		}
	}
}

// TestListDevicesNeverMislead lists 33,000 devices on the embedded store
// with a filter matching one of them: one request finds it, and no page
// is empty with a next. (The baseline, a scan of 20 pages a request, took
// 166 requests.) Over the store's scan budget, a page that stops early
// says so.
func TestListDevicesNeverMislead(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 33,000 devices")
	}
	e := newEnv(t, nil)
	put := func(from, to int, rare int) {
		var puts []secrets.DevicePut
		for i := from; i < to; i++ {
			d := secrets.Device{ID: fmt.Sprintf("dev-%06d", i), Cloud: "aliyun",
				Params: map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": fmt.Sprintf("dev-%06d", i)},
				Secret: "aliyun-secret", Labels: map[string]string{"site": "sz"}}
			if i == rare {
				d.Labels["rare"] = "yes"
			}
			puts = append(puts, secrets.DevicePut{Device: d, IfVersion: 0})
		}
		for _, res := range e.store.Store.(secrets.BulkDeviceStore).PutDevices(context.Background(), puts) {
			if res.Err != nil {
				t.Fatal(res.Err)
			}
		}
	}
	put(0, 33_000, 31_337)
	type page struct {
		Devices []struct{ ID string }
		Next    *string
		Scanned int
		Partial bool
		Reason  string
	}
	list := func(query string) (ids []string, requests int, pages []page) {
		t.Helper()
		after := ""
		for {
			q := "/v1/devices?" + query
			if after != "" {
				q += "&after=" + after
			}
			r := e.do("GET", q, testAdmin, nil)
			mustStatus(t, r, 200, q)
			requests++
			var p page
			r.json(t, &p)
			pages = append(pages, p)
			for _, d := range p.Devices {
				ids = append(ids, d.ID)
			}
			if p.Next == nil {
				return ids, requests, pages
			}
			if len(p.Devices) == 0 && (!p.Partial || p.Reason == "" || p.Scanned == 0) {
				t.Fatalf("an empty page with a next and no explanation: %+v", p)
			}
			after = *p.Next
		}
	}
	start := time.Now()
	ids, requests, _ := list("label=rare=yes")
	t.Logf("1 of 33,000 devices: %d request(s), %v", requests, time.Since(start))
	if !slices.Equal(ids, []string{"dev-031337"}) || requests != 1 {
		t.Fatalf("found %v in %d requests, want dev-031337 in 1", ids, requests)
	}
	ids, requests, _ = list("label=rare=no&limit=10")
	if len(ids) != 0 || requests != 1 {
		t.Fatalf("no match: %v in %d requests", ids, requests)
	}
	ids, requests, _ = list("label=site=sz&limit=1000")
	if len(ids) != 33_000 || requests != 33 {
		t.Fatalf("every device: %d in %d requests", len(ids), requests)
	}
	// Past the embedded store's budget of 50,000 records, a request
	// stops and says so.
	put(33_000, 60_000, -1)
	start = time.Now()
	ids, requests, pages := list("label=rare=yes")
	t.Logf("1 of 60,000 devices: %d request(s), %v", requests, time.Since(start))
	if !slices.Equal(ids, []string{"dev-031337"}) || requests != 2 {
		t.Fatalf("found %v in %d requests, want dev-031337 in 2", ids, requests)
	}
	if p := pages[0]; !p.Partial || p.Scanned != 50_000 || *p.Next != "dev-049999" || len(p.Devices) != 1 {
		t.Fatalf("first page: partial %t scanned %d next %v devices %d", p.Partial, p.Scanned, *p.Next, len(p.Devices))
	}
	if p := pages[1]; p.Partial || p.Scanned != 10_000 || len(p.Devices) != 0 {
		t.Fatalf("last page: %+v", p)
	}
}
