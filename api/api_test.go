package api

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/credsign/credsign"
	"github.com/credsign/credsign/secrets"
)

// fixture registers every cloud's device and mints the tokens a role
// matrix needs.
type fixture struct {
	*env
	prov, prov2       string // provisioner tokens
	dev, devOther     string // device tokens for aliyun and tencent devices
	revoked           string // revoked provisioner token
	revokedDev        string // revoked device token
	devTokenID        string
	secrets, tokens   []string
	provID, revokedID string
	// An azure group "grp", an enrolment token of it (and its ID), and a
	// revoked one.
	enrol, enrolID, revokedEnrol string
	// kid is a key bound to aliyun-1 by TestRoleMatrix, "" for none.
	kid string
}

// testGroupKey is the group key of the fixture's group (base64 of 32 bytes).
const testGroupKey = "Z3JvdXAta2V5LW9mLXRoZS1maXh0dXJlLTMyYnl0ZXM="

func groupDoc() map[string]any {
	return map[string]any{"cloud": "azure", "params": map[string]any{"hubHost": "myhub.azure-devices.net", "deviceId": "{deviceId}"},
		"secret": testGroupKey, "labels": map[string]string{"fleet": "lamps"}}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{env: newEnv(t, withTPM(t))}
	f.tokens = append(f.tokens, testAdmin)
	mk := func() (string, string) {
		r := f.do("POST", "/v1/tokens", testAdmin, map[string]any{"role": "provisioner"})
		mustStatus(t, r, 201, "create provisioner token")
		var tc struct{ ID, Token, Role string }
		r.json(t, &tc)
		if !strings.HasPrefix(tc.Token, "csp_") || tc.Role != "provisioner" || len(tc.Token) < 4+64 {
			t.Fatalf("bad provisioner token %+v", tc)
		}
		f.tokens = append(f.tokens, tc.Token)
		return tc.ID, tc.Token
	}
	f.provID, f.prov = mk()
	_, f.prov2 = mk()
	f.revokedID, f.revoked = mk()
	mustStatus(t, f.do("DELETE", "/v1/tokens/"+f.revokedID, testAdmin, nil), 204, "revoke provisioner")
	for name, doc := range devices() {
		f.secrets = append(f.secrets, doc["secret"].(string))
		mustStatus(t, f.do("PUT", "/v1/devices/"+name+"-1", f.prov, doc), 201, "put "+name)
	}
	mint := func(id string) (string, string) {
		r := f.do("POST", "/v1/devices/"+id+"/tokens", f.prov, nil)
		mustStatus(t, r, 201, "mint device token")
		var tc struct{ ID, Token, Role, DeviceID string }
		r.json(t, &tc)
		if !strings.HasPrefix(tc.Token, "csd_") || tc.DeviceID != id || tc.Role != "device" {
			t.Fatalf("bad device token %+v", tc)
		}
		f.tokens = append(f.tokens, tc.Token)
		return tc.ID, tc.Token
	}
	mustStatus(t, f.do("PUT", "/v1/groups/grp", f.prov, groupDoc()), 201, "put group")
	f.secrets = append(f.secrets, testGroupKey)
	mintEnrol := func() (string, string) {
		r := f.do("POST", "/v1/groups/grp/enrolment-tokens", f.prov, map[string]any{"maxUses": 100, "ttlSeconds": 3600})
		mustStatus(t, r, 201, "mint enrolment token")
		var et struct{ ID, Token string }
		r.json(t, &et)
		if !strings.HasPrefix(et.Token, "cse_"+et.ID+".") {
			t.Fatalf("bad enrolment token %+v", et)
		}
		f.tokens = append(f.tokens, et.Token)
		return et.ID, et.Token
	}
	f.enrolID, f.enrol = mintEnrol()
	var rid0 string
	rid0, f.revokedEnrol = mintEnrol()
	mustStatus(t, f.do("DELETE", "/v1/groups/grp/enrolment-tokens/"+rid0, f.prov, nil), 204, "revoke enrolment token")
	f.devTokenID, f.dev = mint("aliyun-1")
	_, f.devOther = mint("tencent-1")
	var rid string
	rid, f.revokedDev = mint("aliyun-1")
	mustStatus(t, f.do("DELETE", "/v1/devices/aliyun-1/tokens/"+rid, f.prov, nil), 204, "revoke device token")
	return f
}

// TestRoleMatrix derives who may call what from openapi.yaml (the one
// declaration, x-credsign-roles) and checks every secured operation with
// every kind of caller: a role the contract lists gets the operation's
// success status, any other 403, and a missing, unknown or revoked token
// 401. Loosening or tightening the contract without the server following
// (or the reverse) fails here; so does an operation this test does not call.
func TestRoleMatrix(t *testing.T) {
	type call struct {
		method, path string
		body         any
		ok           int
		// own: a device token names its own device in path (else another).
		own bool
	}
	calls := map[string]call{
		"listClouds":           {"GET", "/v1/clouds", nil, 200, false},
		"listDevices":          {"GET", "/v1/devices", nil, 200, false},
		"getDevice":            {"GET", "/v1/devices/aliyun-1", nil, 200, true},
		"putDevice":            {"PUT", "/v1/devices/aliyun-1", devices()["aliyun"], 200, true},
		"deleteDevice":         {"DELETE", "/v1/devices/aliyun-1", nil, 204, true},
		"issueCredentials":     {"POST", "/v1/devices/aliyun-1/credentials", nil, 200, true},
		"createDeviceToken":    {"POST", "/v1/devices/aliyun-1/tokens", nil, 201, true},
		"createToken":          {"POST", "/v1/tokens", map[string]any{"role": "provisioner"}, 201, false},
		"listTokens":           {"GET", "/v1/tokens", nil, 200, false},
		"listDeviceTokens":     {"GET", "/v1/devices/aliyun-1/tokens", nil, 200, true},
		"rotateDeviceToken":    {"POST", "/v1/devices/aliyun-1/tokens/rotate", nil, 201, true},
		"listEnrolmentTokens":  {"GET", "/v1/groups/grp/enrolment-tokens", nil, 200, false},
		"importDevices":        {"POST", "/v1/imports?mode=upsert", importLines(map[string]any{"id": "aliyun-9", "cloud": "aliyun", "params": devices()["aliyun"]["params"], "secret": "aliyun-secret-9"}), 200, false},
		"rotateJWTKey":         {"POST", "/v1/keys/jwt/rotate", nil, 200, false},
		"getBackup":            {"GET", "/v1/admin/backup", nil, 200, false},
		"doctorDevice":         {"POST", "/v1/devices/aliyun-1/doctor", map[string]any{"clientId": "c", "username": "u", "password": "p"}, 200, true},
		"listGroups":           {"GET", "/v1/groups", nil, 200, false},
		"getGroup":             {"GET", "/v1/groups/grp", nil, 200, false},
		"putGroup":             {"PUT", "/v1/groups/grp", groupDoc(), 200, false},
		"deleteGroup":          {"DELETE", "/v1/groups/grp", nil, 204, false},
		"createEnrolmentToken": {"POST", "/v1/groups/grp/enrolment-tokens", map[string]any{"maxUses": 1, "ttlSeconds": 60}, 201, false},
		"enrol":                {"POST", "/v1/enrol", map[string]any{"deviceId": "enrolled-1"}, 201, false},
		"patchDevice":          {"PATCH", "/v1/devices/aliyun-1", mergePatch(`{"labels":{"row":"3"}}`), 200, true},
		"patchGroup":           {"PATCH", "/v1/groups/grp", mergePatch(`{"labels":{"owner":"team-b"}}`), 200, false},
		"listDeviceKeys":       {"GET", "/v1/devices/aliyun-1/keys", nil, 200, true},
		"enrolAttest":          {"POST", "/v1/enrol/attest", attestBody(t, "enrolled-2"), 200, false},
	}
	rotations := 0
	doc, err := openapi3.NewLoader().LoadFromData(credsign.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	type secured struct {
		id    string
		roles []string
	}
	var ops []secured
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.Security != nil && len(*op.Security) == 0 {
				continue // public
			}
			roles, err := operationRoles(op)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, secured{op.OperationID, roles})
		}
	}
	slices.SortFunc(ops, func(a, b secured) int { return strings.Compare(a.id, b.id) })
	callers := []struct {
		name string
		tok  func(f *fixture) string
		role string // "" for callers that must get 401
	}{
		{"none", func(*fixture) string { return "" }, ""},
		{"garbage", func(*fixture) string { return "csp_nope" }, ""},
		{"revoked provisioner", func(f *fixture) string { return f.revoked }, ""},
		{"revoked device", func(f *fixture) string { return f.revokedDev }, ""},
		{"admin", func(*fixture) string { return testAdmin }, "admin"},
		{"provisioner", func(f *fixture) string { return f.prov2 }, "provisioner"},
		{"device own", func(f *fixture) string { return f.dev }, "device"},
		{"device other", func(f *fixture) string { return f.devOther }, "device-other"},
		{"enrolment", func(f *fixture) string { return f.enrol }, "enrolment"},
		{"revoked enrolment", func(f *fixture) string { return f.revokedEnrol }, ""},
	}
	var f *fixture
	for _, op := range ops {
		for _, c := range callers {
			if f == nil {
				f = newFixture(t)
			}
			cl, ok := calls[op.id]
			switch op.id {
			case "revokeDeviceToken":
				cl, ok = call{"DELETE", "/v1/devices/aliyun-1/tokens/" + f.devTokenID, nil, 204, true}, true
			case "revokeToken":
				cl, ok = call{"DELETE", "/v1/tokens/" + f.provID, nil, 204, false}, true
			case "getEnrolmentToken":
				cl, ok = call{"GET", "/v1/groups/grp/enrolment-tokens/" + f.enrolID, nil, 200, false}, true
			case "revokeEnrolmentToken":
				cl, ok = call{"DELETE", "/v1/groups/grp/enrolment-tokens/" + f.enrolID, nil, 204, false}, true
			case "rotateDeviceSecret":
				// A new secret each time: the current one is refused.
				rotations++
				cl, ok = call{"PUT", "/v1/devices/aliyun-1/secret", map[string]any{"secret": fmt.Sprintf("aliyun-rotated-%d", rotations)}, 200, true}, true
			case "addDeviceKey":
				_, jwk := newTestKey(t)
				cl, ok = call{"POST", "/v1/devices/aliyun-1/keys", map[string]any{"jwk": jwk}, 201, true}, true
			case "removeDeviceKey":
				if f.kid == "" {
					_, jwk := newTestKey(t)
					r := f.do("POST", "/v1/devices/aliyun-1/keys", testAdmin, map[string]any{"jwk": jwk})
					mustStatus(t, r, 201, "add a key to remove")
					var k struct{ Kid string }
					r.json(t, &k)
					f.kid = k.Kid
				}
				cl, ok = call{"DELETE", "/v1/devices/aliyun-1/keys/" + f.kid, nil, 204, true}, true
			}
			if !ok {
				t.Fatalf("operation %s of openapi.yaml is not in the role matrix", op.id)
			}
			want := 403
			switch {
			case c.role == "":
				want = 401
			case c.role == "device-other":
				// Another device's token: never allowed on aliyun-1.
			case slices.Contains(op.roles, c.role) && (c.role != "device" || cl.own):
				want = cl.ok
			}
			r := f.do(cl.method, cl.path, c.tok(f), cl.body)
			if r.status < 300 && (cl.method == "DELETE" || op.id == "rotateDeviceToken") {
				f = nil // a new fixture for the next caller
			}
			if r.status != want {
				t.Errorf("%s as %s: status %d, want %d (%s)", op.id, c.name, r.status, want, r.body)
			}
			if r.status >= 400 {
				r.problem(t)
			}
			if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s as %s: 401 without WWW-Authenticate", op.id, c.name)
			}
		}
	}
	f = newFixture(t)
	// A revoked token stops working at once.
	mustStatus(t, f.do("DELETE", "/v1/tokens/"+f.provID, testAdmin, nil), 204, "admin revoke token")
	mustStatus(t, f.do("GET", "/v1/clouds", f.prov, nil), 401, "revoked by admin")
	// Wrong device for a device-token revocation is 404, not a revocation.
	r := f.do("DELETE", "/v1/devices/tencent-1/tokens/"+f.devTokenID, testAdmin, nil)
	mustStatus(t, r, 404, "revoke token of another device")
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1/credentials", f.dev, nil), 200, "not revoked by the 404")
	// Unknown token IDs.
	mustStatus(t, f.do("DELETE", "/v1/tokens/ffffffffffffffffffff", testAdmin, nil), 404, "revoke unknown token")
}

func TestProvisionerNeverReadsSecret(t *testing.T) {
	f := newFixture(t)
	for name := range devices() {
		r := f.do("GET", "/v1/devices/"+name+"-1", f.prov, nil)
		mustStatus(t, r, 200, "get")
		if strings.Contains(string(r.body), `"secret"`) || strings.Contains(strings.ToLower(string(r.body)), "previoussecret") {
			t.Errorf("%s: GET shows a secret field: %s", name, r.body)
		}
	}
	r := f.do("GET", "/v1/devices", f.prov, nil)
	for _, s := range f.secrets {
		if strings.Contains(string(r.body), s) {
			t.Errorf("listing contains a secret")
		}
	}
}

func TestCredentialsEveryCloud(t *testing.T) {
	f := newFixture(t)
	for name := range devices() {
		id := name + "-1"
		tok := f.dev
		if name != "aliyun" {
			r := f.do("POST", "/v1/devices/"+id+"/tokens", f.prov, nil)
			mustStatus(t, r, 201, "mint")
			var tc struct{ Token string }
			r.json(t, &tc)
			tok = tc.Token
			f.tokens = append(f.tokens, tok)
		}
		r := f.do("POST", "/v1/devices/"+id+"/credentials", tok, map[string]any{"ttlSeconds": 600})
		mustStatus(t, r, 200, name+" credentials")
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", name, r.header.Get("Cache-Control"))
		}
		var c struct {
			DeviceID, Cloud, ClientID, Username, Password, Host string
			Port                                                int
			ExpiresAt                                           *time.Time
			ExpiryEnforced                                      bool
		}
		r.json(t, &c)
		if c.DeviceID != id || c.Cloud != name || c.Password == "" || c.Host == "" || c.Port == 0 {
			t.Errorf("%s: credentials %+v", name, c)
		}
		// The triple appears as it is, so that copying it from curl's
		// output works: Aliyun usernames and Azure passwords hold '&',
		// which encoding/json would write as \u0026.
		for _, v := range []string{c.ClientID, c.Username, c.Password} {
			if !strings.Contains(string(r.body), `"`+v+`"`) {
				t.Errorf("%s: %q is escaped in the body %s", name, v, r.body)
			}
		}
		// Without a body the cloud's default lifetime applies.
		mustStatus(t, f.do("POST", "/v1/devices/"+id+"/credentials", tok, nil), 200, name+" default ttl")
	}
	// Huawei with checkTimestamp honours at most an hour.
	r := f.do("POST", "/v1/devices/huawei-1/credentials", f.prov, map[string]any{"ttlSeconds": 7200})
	mustStatus(t, r, 422, "ttl over the cloud's maximum")
	if p := r.problem(t); !strings.Contains(string(r.body), `"field":"ttlSeconds"`) {
		t.Errorf("ttl problem does not name ttlSeconds: %v", p)
	}
	r = f.do("POST", "/v1/devices/nope/credentials", f.prov, nil)
	mustStatus(t, r, 404, "unknown device")
}

func TestDeletedDeviceTokenStaysDead(t *testing.T) {
	f := newFixture(t)
	mustStatus(t, f.do("DELETE", "/v1/devices/aliyun-1", f.prov, nil), 204, "delete")
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1/credentials", f.dev, nil), 404, "creds for deleted")
	mustStatus(t, f.do("DELETE", "/v1/devices/aliyun-1", f.prov, nil), 404, "delete again")
	// Created requests after the token: stamped later by the store's clock.
	mustStatus(t, f.do("PUT", "/v1/devices/aliyun-1", f.prov, devices()["aliyun"]), 201, "recreate")
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1/credentials", f.dev, nil), 403, "old token on new device")
}

// TestBadRequestsChangeNothing sends malformed, oversized, mistyped and
// invalid documents and checks each gets problem JSON and leaves the store
// as it was.
func TestBadRequestsChangeNothing(t *testing.T) {
	f := newFixture(t)
	good := devices()["aliyun"]
	with := func(k string, v any) map[string]any {
		d := map[string]any{}
		for kk, vv := range good {
			d[kk] = vv
		}
		if v == nil {
			delete(d, k)
		} else {
			d[k] = v
		}
		return d
	}
	cases := []struct {
		name   string
		body   any
		hdr    []string
		status int
		field  string
	}{
		{"malformed", `{"cloud": "aliyun",`, nil, 400, "body"},
		{"not an object", `[1,2]`, nil, 422, "body"},
		{"empty body", "", nil, 422, "body"},
		{"oversized", `{"cloud":"aliyun","secret":"` + strings.Repeat("x", 70<<10) + `"}`, nil, 413, ""},
		{"text/plain", `{}`, []string{"Content-Type", "text/plain"}, 415, ""},
		{"unknown field", with("owner", "bob"), nil, 422, "owner"},
		{"missing secret", with("secret", nil), nil, 422, "secret"},
		{"empty secret", with("secret", ""), nil, 422, "secret"},
		{"secret wrong type", with("secret", 42), nil, 422, "secret"},
		{"params wrong type", with("params", "pk"), nil, 422, "params"},
		{"param value object", with("params", map[string]any{"productKey": map[string]any{"a": 1}, "deviceName": "d"}), nil, 422, "params.productKey"},
		{"unknown cloud", with("cloud", "gcp"), nil, 422, "cloud"},
		{"unknown param", with("params", map[string]any{"productKey": "pk", "deviceName": "d", "colour": "red"}), nil, 422, "params.colour"},
		{"missing param", with("params", map[string]any{"productKey": "pk"}), nil, 422, "params.deviceName"},
		{"bad param value", with("params", map[string]any{"productKey": "pk", "deviceName": "d", "secureMode": 7}), nil, 422, "params.secureMode"},
		{"label wrong type", with("labels", map[string]any{"site": 1}), nil, 422, "labels.site"},
		{"bad label key", with("labels", map[string]any{"!": "x"}), nil, 422, "labels"},
		{"invalid UTF-8 in secret", []byte("{\"cloud\":\"aliyun\",\"params\":{\"productKey\":\"pk\",\"deviceName\":\"d\"},\"secret\":\"s\xff\xfe\"}"), nil, 400, "body"},
		{"invalid UTF-8 in label", []byte("{\"cloud\":\"aliyun\",\"params\":{\"productKey\":\"pk\",\"deviceName\":\"d\"},\"secret\":\"s\",\"labels\":{\"a\":\"\xc3\"}}"), nil, 400, "body"},
		{"NUL in secret", with("secret", "aliyun-secret\x00x"), nil, 422, "secret"},
		{"newline after secret", with("secret", "aliyun-secret\n"), nil, 422, "secret"},
		{"control in param", with("params", map[string]any{"productKey": "pk", "deviceName": "d\r"}), nil, 422, "params.deviceName"},
		{"control in label", with("labels", map[string]any{"site": "s\u0085z"}), nil, 422, "labels.site"},
		{"duplicate secret", `{"cloud":"aliyun","params":{"productKey":"pk","deviceName":"d"},"secret":"aliyun-secret","secret":"other"}`, nil, 400, "secret"},
		{"duplicate param", `{"cloud":"aliyun","params":{"productKey":"pk","deviceName":"d","productKey":"pk2"},"secret":"aliyun-secret"}`, nil, 400, "params.productKey"},
		{"duplicate after nested", `{"params":{"productKey":"pk","deviceName":"d"},"labels":{"a":"1"},"cloud":"aliyun","secret":"s","labels":{}}`, nil, 400, "labels"},
		{"If-Match garbage", good, []string{"If-Match", "nonsense"}, 400, "header.If-Match"},
		{"both preconditions", good, []string{"If-Match", `"1"`, "If-None-Match", "*"}, 400, ""},
	}
	before := f.do("GET", "/v1/devices/aliyun-1", f.prov, nil)
	for _, c := range cases {
		for _, id := range []string{"aliyun-1", "fresh-1"} {
			r := f.do("PUT", "/v1/devices/"+id, f.prov, c.body, c.hdr...)
			if r.status != c.status {
				t.Errorf("%s (%s): status %d, want %d: %s", c.name, id, r.status, c.status, r.body)
				continue
			}
			r.problem(t)
			if c.field != "" && !strings.Contains(string(r.body), `"field":"`+c.field+`"`) {
				t.Errorf("%s: problem does not name field %q: %s", c.name, c.field, r.body)
			}
			for _, s := range append(f.secrets, "aliyun-secret") {
				if strings.Contains(string(r.body), s) {
					t.Errorf("%s: problem echoes the secret", c.name)
				}
			}
		}
	}
	// Azure and Tencent secrets must be base64.
	az := devices()["azure"]
	az["secret"] = "not base64!!"
	r := f.do("PUT", "/v1/devices/azure-2", f.prov, az)
	mustStatus(t, r, 422, "azure non-base64 secret")
	if strings.Contains(string(r.body), "not base64!!") {
		t.Errorf("problem echoes the secret: %s", r.body)
	}
	after := f.do("GET", "/v1/devices/aliyun-1", f.prov, nil)
	if string(before.body) != string(after.body) {
		t.Errorf("device changed:\n%s\n%s", before.body, after.body)
	}
	for _, id := range []string{"fresh-1", "azure-2"} {
		mustStatus(t, f.do("GET", "/v1/devices/"+id, f.prov, nil), 404, "not created: "+id)
	}
	// Bad path and query parameters.
	mustStatus(t, f.do("GET", "/v1/devices/-bad", f.prov, nil), 400, "bad device id")
	mustStatus(t, f.do("GET", "/v1/devices?limit=0", f.prov, nil), 400, "limit 0")
	mustStatus(t, f.do("GET", "/v1/devices?limit=abc", f.prov, nil), 400, "limit abc")
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1/credentials", f.prov, map[string]any{"ttlSeconds": "60"}), 422, "ttl string")
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1/credentials", f.prov, map[string]any{"ttl": 60}), 422, "ttl unknown field")
	for _, body := range []string{`{"ttlSeconds": 60.0}`, `{"ttlSeconds": 6e1}`, `{"ttlSeconds": 1e400}`, `{"ttlSeconds": 1.5}`} {
		r := f.do("POST", "/v1/devices/aliyun-1/credentials", f.prov, body)
		mustStatus(t, r, 422, body)
		if !strings.Contains(string(r.body), `"field":"ttlSeconds"`) {
			t.Errorf("%s: problem does not name ttlSeconds: %s", body, r.body)
		}
	}
	mustStatus(t, f.do("POST", "/v1/tokens", testAdmin, map[string]any{"role": "admin"}), 422, "token role admin")
	mustStatus(t, f.do("GET", "/v1/nothing", f.prov, nil), 404, "unknown path")
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1", f.prov, nil), 405, "wrong method")
}

func TestIfMatch(t *testing.T) {
	f := newFixture(t)
	doc := devices()["huawei"]
	r := f.do("GET", "/v1/devices/huawei-1", f.prov, nil)
	mustStatus(t, r, 200, "get")
	tag := r.header.Get("ETag")
	if !regexp.MustCompile(`^"1\.[0-9]+"$`).MatchString(tag) {
		t.Fatalf("ETag %q", tag)
	}
	created := strings.TrimSuffix(strings.TrimPrefix(tag, `"1.`), `"`)
	mustStatus(t, f.do("PUT", "/v1/devices/huawei-1", f.prov, doc, "If-Match", `"7.`+created+`"`), 412, "stale If-Match")
	mustStatus(t, f.do("PUT", "/v1/devices/huawei-1", f.prov, doc, "If-Match", `W/`+tag), 412, "weak If-Match")
	mustStatus(t, f.do("PUT", "/v1/devices/huawei-1", f.prov, doc, "If-Match", `"1"`), 412, "bare version")
	r = f.do("PUT", "/v1/devices/huawei-1", f.prov, doc, "If-Match", tag)
	mustStatus(t, r, 200, "matching If-Match")
	tag2 := r.header.Get("ETag")
	if tag2 != `"2.`+created+`"` {
		t.Errorf("ETag after update %q", tag2)
	}
	mustStatus(t, f.do("PUT", "/v1/devices/huawei-1", f.prov, doc, "If-Match", tag), 412, "old tag again")
	mustStatus(t, f.do("PUT", "/v1/devices/huawei-1", f.prov, doc, "If-Match", `"5.1", `+tag2), 200, "tag list")
	mustStatus(t, f.do("PUT", "/v1/devices/huawei-1", f.prov, doc, "If-Match", "*"), 200, "If-Match *")
	mustStatus(t, f.do("PUT", "/v1/devices/ghost", f.prov, doc, "If-Match", "*"), 412, "If-Match * on missing")
	mustStatus(t, f.do("PUT", "/v1/devices/ghost", f.prov, doc, "If-Match", tag), 412, "If-Match on missing")
	mustStatus(t, f.do("PUT", "/v1/devices/huawei-1", f.prov, doc, "If-None-Match", "*"), 409, "create-only on existing")
	mustStatus(t, f.do("PUT", "/v1/devices/ghost", f.prov, doc, "If-None-Match", "*"), 201, "create-only on new")

	// A tag read before the device was deleted and created again must not
	// match the new device, although its version is 1 again.
	r = f.do("GET", "/v1/devices/ghost", f.prov, nil)
	old := r.header.Get("ETag")
	mustStatus(t, f.do("DELETE", "/v1/devices/ghost", f.prov, nil), 204, "delete")
	r = f.do("PUT", "/v1/devices/ghost", f.prov, doc)
	mustStatus(t, r, 201, "create again")
	if r.header.Get("ETag") == old {
		t.Fatalf("the new device has the old ETag %s", old)
	}
	mustStatus(t, f.do("PUT", "/v1/devices/ghost", f.prov, doc, "If-Match", old), 412, "tag of the deleted device")
	mustStatus(t, f.do("PUT", "/v1/devices/ghost", f.prov, doc, "If-Match", r.header.Get("ETag")), 200, "tag of the new device")
}

func TestListDevices(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 5; i++ {
		d := devices()["aliyun"]
		d["labels"] = map[string]string{"site": "sz", "row": strconv.Itoa(i % 2)}
		mustStatus(t, f.do("PUT", fmt.Sprintf("/v1/devices/lamp-%d", i), f.prov, d), 201, "put")
	}
	var all []string
	for _, ids := range f.devicePages(t, "limit=3", f.prov, 12) {
		all = append(all, ids...)
	}
	if len(all) != 9 {
		t.Errorf("listed %d devices: %v", len(all), all)
	}
	var page devicePage
	f.do("GET", "/v1/devices?cloud=aliyun&label=row=1&label=site=sz", f.prov, nil).json(t, &page)
	if len(page.Devices) != 2 || page.Devices[0].ID != "lamp-1" || page.Devices[1].ID != "lamp-3" {
		t.Errorf("filtered: %+v", page.Devices)
	}
	r := f.do("GET", "/v1/devices?label=row=1&label=row=0", f.prov, nil)
	mustStatus(t, r, 200, "conflicting labels")
	page.Devices = nil
	r.json(t, &page)
	if len(page.Devices) != 0 || page.Next != nil {
		t.Errorf("row=1 and row=0 at once matched %+v", page.Devices)
	}
	f.do("GET", "/v1/devices?cloud=tencent", f.prov, nil).json(t, &page)
	if len(page.Devices) != 1 || page.Devices[0].ID != "tencent-1" {
		t.Errorf("by cloud: %+v", page.Devices)
	}
	mustStatus(t, f.do("GET", "/v1/devices?label=nolabel", f.prov, nil), 400, "label without =")
}

// TestRateLimit checks that device tokens and admin/provisioner tokens
// have their own limits: a fleet tool (or a black-box checker) making a
// few hundred calls with one provisioner token is not slowed by the
// device limit, and each limit answers 429 with Retry-After.
func TestRateLimit(t *testing.T) {
	cases := []struct {
		name               string
		cfg                func(*envConfig)
		asAdmin, asDevice  int // requests made with each token
		adminOK, devOK     int // how many of them succeed
		adminLim, devLimit bool
	}{
		{"device limited, admin not", func(c *envConfig) { c.RatePerMinute = 60; c.RateBurst = 3 }, 50, 5, 50, 3, false, true},
		{"both limited", func(c *envConfig) {
			c.RatePerMinute, c.RateBurst = 60, 3
			c.ProvisionerRatePerMinute, c.ProvisionerRateBurst = 60, 5
		}, 7, 4, 5, 3, true, true},
		{"serve defaults: 300 provisioner calls pass", func(c *envConfig) {
			c.RatePerMinute, c.RateBurst = DefaultRatePerMinute, DefaultRateBurst
			c.ProvisionerRatePerMinute, c.ProvisionerRateBurst = DefaultProvisionerRatePerMinute, DefaultProvisionerRateBurst
		}, 300, DefaultRateBurst + 1, 300, DefaultRateBurst, false, true},
		{"off", func(c *envConfig) { c.RatePerMinute = 0; c.ProvisionerRatePerMinute = 60; c.ProvisionerRateBurst = 1 }, 50, 50, 50, 50, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.cfg)
			mustStatus(t, e.do("PUT", "/v1/devices/hw-1", testAdmin, devices()["huawei"]), 201, "put")
			r := e.do("POST", "/v1/devices/hw-1/tokens", testAdmin, nil)
			mustStatus(t, r, 201, "mint")
			var tok struct{ Token string }
			r.json(t, &tok)
			count := func(n int, token, method, path string) (ok int, last resp) {
				for i := 0; i < n; i++ {
					last = e.do(method, path, token, nil)
					if last.status < 300 {
						ok++
					} else if last.status != 429 {
						t.Fatalf("%s %s: status %d: %s", method, path, last.status, last.body)
					}
				}
				return ok, last
			}
			// The admin made two calls above.
			adminOK, adminLast := count(c.asAdmin-2, testAdmin, "GET", "/v1/devices/hw-1")
			devOK, devLast := count(c.asDevice, tok.Token, "POST", "/v1/devices/hw-1/credentials")
			if adminOK+2 != c.adminOK || devOK != c.devOK {
				t.Errorf("admin %d/%d, device %d/%d succeeded; want %d and %d", adminOK+2, c.asAdmin, devOK, c.asDevice, c.adminOK, c.devOK)
			}
			for _, l := range []struct {
				limited bool
				r       resp
			}{{c.adminLim, adminLast}, {c.devLimit, devLast}} {
				if !l.limited {
					continue
				}
				mustStatus(t, l.r, 429, "over the limit")
				l.r.problem(t)
				if ra, err := strconv.Atoi(l.r.header.Get("Retry-After")); err != nil || ra < 1 {
					t.Errorf("Retry-After %q", l.r.header.Get("Retry-After"))
				}
			}
			// Public endpoints are not limited per token.
			mustStatus(t, e.do("GET", "/healthz", "", nil), 200, "healthz")
		})
	}
}

// TestMethodNotAllowed checks that a 405 names the methods the resource
// has (RFC 9110 section 15.5.6) in a problem document.
func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct{ method, path, allow string }{
		{"POST", "/v1/devices/lamp-1", "GET, HEAD, PUT, PATCH, DELETE"},
		{"GET", "/v1/devices/lamp-1/credentials", "POST"},
		{"HEAD", "/v1/devices/lamp-1/credentials", "POST"},
		{"PUT", "/v1/tokens", "GET, HEAD, POST"},
		{"POST", "/v1/devices", "GET, HEAD"},
		{"POST", "/metrics", "GET, HEAD"},
		{"DELETE", "/healthz", "GET, HEAD"},
	} {
		r := e.do(c.method, c.path, testAdmin, nil)
		mustStatus(t, r, 405, c.method+" "+c.path)
		if c.method != "HEAD" {
			r.problem(t)
		}
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

// TestHead checks that HEAD answers like GET, with the headers and no body.
func TestHead(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/healthz", "", 200},
		{"/openapi.yaml", "", 200},
		{"/metrics", "", 200},
		{"/v1/devices/aliyun-1", f.prov, 200},
		{"/v1/devices/nope-1", f.prov, 404},
		{"/v1/devices/aliyun-1", "", 401},
		{"/v1/devices/aliyun-1", f.dev, 403},
	} {
		get := f.do("GET", c.path, c.token, nil)
		head := f.do("HEAD", c.path, c.token, nil)
		if head.status != c.status || get.status != c.status {
			t.Errorf("%s: HEAD %d, GET %d, want %d", c.path, head.status, get.status, c.status)
		}
		if len(head.body) != 0 {
			t.Errorf("HEAD %s: body %q", c.path, head.body)
		}
		for _, h := range []string{"Content-Type", "ETag", "WWW-Authenticate"} {
			if head.header.Get(h) != get.header.Get(h) {
				t.Errorf("HEAD %s: %s %q, GET has %q", c.path, h, head.header.Get(h), get.header.Get(h))
			}
		}
	}
}

func TestStoreUnavailable(t *testing.T) {
	f := &fixture{env: newEnv(t, func(c *envConfig) { c.Cache.TTL, c.ReadyCacheFor = -1, -1 })} // no cache, /readyz pings every time
	mustStatus(t, f.do("POST", "/v1/tokens", testAdmin, map[string]any{"role": "provisioner"}), 201, "token")
	var tc struct{ Token string }
	f.do("POST", "/v1/tokens", testAdmin, map[string]any{"role": "provisioner"}).json(t, &tc)
	f.prov = tc.Token
	mustStatus(t, f.do("PUT", "/v1/devices/aliyun-1", f.prov, devices()["aliyun"]), 201, "put")
	mustStatus(t, f.do("GET", "/readyz", "", nil), 200, "ready")
	f.store.down.Store(true)
	for _, c := range []struct{ method, path, token string }{
		{"GET", "/readyz", ""},
		{"GET", "/v1/devices/aliyun-1", testAdmin},
		{"GET", "/v1/clouds", f.prov},
	} {
		r := f.do(c.method, c.path, c.token, nil)
		mustStatus(t, r, 503, c.path)
		r.problem(t)
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", c.path)
		}
	}
	mustStatus(t, f.do("GET", "/healthz", "", nil), 200, "healthz while store down")
	// The operator sees why callers got 503s: a warning naming the store error.
	if logs := f.logs.String(); !strings.Contains(logs, `"level":"warn"`) || !strings.Contains(logs, "secret store unavailable") || !strings.Contains(logs, secrets.ErrUnavailable.Error()) {
		t.Errorf("no warning with the cause in the logs:\n%s", logs)
	}
}

func TestOperationsEndpoints(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/openapi.yaml", "", nil)
	mustStatus(t, r, 200, "openapi.yaml")
	if !strings.HasPrefix(string(r.body), "openapi: 3.0.3") {
		t.Errorf("openapi.yaml body starts %q", r.body[:20])
	}
	mustStatus(t, f.do("POST", "/v1/devices/aliyun-1/credentials", f.dev, nil), 200, "issue")
	mustStatus(t, f.do("POST", "/v1/devices/tencent-1/credentials", f.dev, nil), 403, "deny")
	// Made-up methods must not each become a metrics series.
	for _, m := range []string{"FOOBAR1", "FOOBAR2", "csp_MADEUP"} {
		mustStatus(t, f.do(m, "/healthz", "", nil), 405, m)
	}
	r = f.do("GET", "/metrics", "", nil)
	mustStatus(t, r, 200, "metrics")
	m := string(r.body)
	for _, want := range []string{
		`credsign_credentials_issued_total{cloud="aliyun",outcome="issued"} 1`,
		`credsign_credentials_issued_total{cloud="none",outcome="denied"} 1`,
		`credsign_enrolments_total{cloud="aliyun",outcome="enrolled"} 0`, // exported before the first enrolment
		`credsign_http_request_duration_seconds_count{code="201",method="PUT",route="/v1/devices/{id}"}`,
		`credsign_store_operation_duration_seconds_count{op="get_device"}`,
		`credsign_http_request_duration_seconds_count{code="405",method="other",route="unmatched"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, bad := range append([]string{"aliyun-1", "tencent-1", "FOOBAR", "MADEUP"}, f.tokens...) {
		if strings.Contains(m, bad) {
			t.Errorf("metrics contain %q", bad)
		}
	}
}

// TestNothingLeaks runs the whole flow and searches every log line and
// every response body that is not the one issuing it for each secret and
// token used.
func TestNothingLeaks(t *testing.T) {
	f := newFixture(t)
	var passwords []string
	for name := range devices() {
		r := f.do("POST", "/v1/devices/"+name+"-1/credentials", f.prov, nil)
		mustStatus(t, r, 200, "issue")
		var c struct{ Password string }
		r.json(t, &c)
		passwords = append(passwords, c.Password)
	}
	// A token pasted into a path by mistake is not logged either.
	mustStatus(t, f.do("GET", "/v1/devices/"+f.dev, testAdmin, nil), 404, "token as device ID")
	mustStatus(t, f.do("GET", "/v1/x/"+f.prov, "", nil), 404, "token in unknown path")
	logs := f.logs.String()
	if !strings.Contains(logs, `"event":"credentials.issued"`) || !strings.Contains(logs, `"event":"token.created"`) ||
		!strings.Contains(logs, `"event":"device.put"`) || !strings.Contains(logs, `"event":"token.revoked"`) {
		t.Errorf("audit events missing from logs:\n%s", logs)
	}
	for _, s := range append(append(append([]string{}, f.secrets...), f.tokens...), passwords...) {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain a secret, token or password (%.6s…)", s)
		}
	}
	// Responses: every secret must be absent; tokens appear only in the
	// bodies that created them, which the fixture read, so count them.
	bodies := f.bodies.String()
	for _, s := range f.secrets {
		if strings.Contains(bodies, s) {
			t.Errorf("a response contains a device secret (%.6s…)", s)
		}
	}
	for _, tok := range f.tokens[1:] {
		if n := strings.Count(bodies, tok); n != 1 {
			t.Errorf("token %.8s… appears in %d responses, want exactly 1", tok, n)
		}
	}
}

func TestCredentialsEmptyJSONBody(t *testing.T) {
	f := newFixture(t)
	r := f.do("POST", "/v1/devices/aliyun-1/credentials", f.dev, "", "Content-Type", "application/json")
	mustStatus(t, r, 200, "empty body with JSON content type")
	r = f.do("POST", "/v1/devices/aliyun-1/credentials", f.dev, "{}")
	mustStatus(t, r, 200, "empty object")
	r = f.do("POST", "/v1/devices/aliyun-1/credentials", f.dev, "null")
	if r.status != 422 && r.status != 400 {
		t.Errorf("null body: %d", r.status)
	}
}

// TestSigningClockLagsWallClock checks that an injected signing clock
// behind the wall clock does not break device tokens.
func TestSigningClockLagsWallClock(t *testing.T) {
	past := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	e := newEnv(t, func(c *envConfig) { c.Now = func() time.Time { return past } })
	mustStatus(t, e.do("PUT", "/v1/devices/d1", testAdmin, devices()["huawei"]), 201, "put")
	r := e.do("POST", "/v1/devices/d1/tokens", testAdmin, nil)
	mustStatus(t, r, 201, "mint")
	var tc struct{ Token string }
	r.json(t, &tc)
	r = e.do("POST", "/v1/devices/d1/credentials", tc.Token, nil)
	mustStatus(t, r, 200, "credentials")
	var c struct{ IssuedAt time.Time }
	r.json(t, &c)
	if !c.IssuedAt.Equal(past) {
		t.Errorf("issuedAt %v, want the injected clock's %v", c.IssuedAt, past)
	}
}

// TestAuthorizeBeforeBody checks that a caller who may not call an
// operation gets 401 or 403 whatever body it sends: the role (declared by
// x-credsign-roles in openapi.yaml) is checked before the body is read
// and validated.
func TestAuthorizeBeforeBody(t *testing.T) {
	f := newFixture(t)
	bodies := []any{`{"cloud":`, `[]`, map[string]any{"ttlSeconds": "x"}, strings.Repeat("x", 70<<10), devices()["huawei"]}
	cases := []struct {
		method, path, token string
		status              int
	}{
		{"PUT", "/v1/devices/aliyun-1", f.dev, 403},
		{"PUT", "/v1/devices/new-1", f.dev, 403},
		{"POST", "/v1/devices/tencent-1/credentials", f.dev, 403},
		{"POST", "/v1/devices/nope-1/credentials", f.dev, 403},
		{"POST", "/v1/tokens", f.prov, 403},
		{"POST", "/v1/tokens", f.dev, 403},
		{"PUT", "/v1/devices/aliyun-1", "", 401},
		{"POST", "/v1/devices/aliyun-1/credentials", f.revokedDev, 401},
		{"POST", "/v1/tokens", f.revoked, 401},
	}
	for _, c := range cases {
		for i, b := range bodies {
			r := f.do(c.method, c.path, c.token, b)
			if r.status != c.status {
				t.Errorf("%s %s body %d: status %d, want %d: %s", c.method, c.path, i, r.status, c.status, r.body)
				continue
			}
			r.problem(t)
		}
	}
	mustStatus(t, f.do("GET", "/v1/devices/new-1", f.prov, nil), 404, "nothing created")
}

func TestOperationRoles(t *testing.T) {
	cases := []struct {
		ext  map[string]any
		want string
		ok   bool
	}{
		{map[string]any{rolesExtension: []any{"admin", "provisioner"}}, "[admin provisioner]", true},
		{map[string]any{rolesExtension: []any{"device"}}, "[device]", true},
		{nil, "", false},
		{map[string]any{rolesExtension: []any{}}, "", false},
		{map[string]any{rolesExtension: "admin"}, "", false},
		{map[string]any{rolesExtension: []any{"admin", "root"}}, "", false},
		{map[string]any{rolesExtension: []any{"admin", 1}}, "", false},
	}
	for _, c := range cases {
		roles, err := operationRoles(&openapi3.Operation{OperationID: "op", Extensions: c.ext})
		if (err == nil) != c.ok || (c.ok && fmt.Sprint(roles) != c.want) {
			t.Errorf("%v: roles %v, err %v; want %s, ok %v", c.ext, roles, err, c.want, c.ok)
		}
	}
}
