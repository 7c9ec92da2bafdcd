package api

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestGroupsAndEnrolment drives groups and enrolment through HTTP, every
// answer checked against openapi.yaml: the group secret is never answered
// or logged, a device of the group needs no secret and gets credentials,
// two enrolments racing for the last use of a token do not both succeed,
// and the problems are the contract's.
func TestGroupsAndEnrolment(t *testing.T) {
	e := newEnv(t, nil)
	// Groups, paged.
	for i := range 3 {
		mustStatus(t, e.do("PUT", fmt.Sprintf("/v1/groups/g%d", i), testAdmin, groupDoc()), 201, "put group")
	}
	mustStatus(t, e.do("PUT", "/v1/groups/g0", testAdmin, groupDoc()), 200, "replace group")
	var page struct {
		Groups []map[string]any
		Next   *string
	}
	e.do("GET", "/v1/groups?limit=2", testAdmin, nil).json(t, &page)
	if len(page.Groups) != 2 || page.Next == nil || *page.Next != "g1" {
		t.Fatalf("first page: %+v", page)
	}
	e.do("GET", "/v1/groups?after=g1", testAdmin, nil).json(t, &page)
	if len(page.Groups) != 1 || page.Next != nil || page.Groups[0]["version"] != float64(1) {
		t.Fatalf("second page: %+v", page)
	}
	r := e.do("PUT", "/v1/groups/bad", testAdmin, map[string]any{"cloud": "azure", "params": map[string]any{}, "secret": "not base64!"})
	mustStatus(t, r, 422, "bad group")
	if p := r.problem(t); !strings.Contains(fmt.Sprint(p["errors"]), "secret") {
		t.Errorf("bad group problem %v", p)
	}
	mustStatus(t, e.do("PUT", "/v1/groups/nokey", testAdmin, map[string]any{"cloud": "azure", "params": map[string]any{}}), 422, "group without secret")
	// A device of the group, without a secret of its own.
	r = e.do("PUT", "/v1/devices/lamp-1", testAdmin, map[string]any{"group": "g0"})
	mustStatus(t, r, 201, "put group device")
	var dev map[string]any
	r.json(t, &dev)
	if dev["group"] != "g0" || dev["cloud"] != "azure" || dev["params"].(map[string]any)["deviceId"] != "lamp-1" {
		t.Fatalf("group device %v", dev)
	}
	mustStatus(t, e.do("POST", "/v1/devices/lamp-1/credentials", testAdmin, nil), 200, "issue for a group device")
	mustStatus(t, e.do("PUT", "/v1/devices/lamp-x", testAdmin, map[string]any{"group": "nope"}), 422, "device of a missing group")
	mustStatus(t, e.do("PUT", "/v1/devices/lamp-y", testAdmin, map[string]any{"params": map[string]any{}}), 422, "device without cloud or group")
	// Enrolment tokens.
	mustStatus(t, e.do("POST", "/v1/groups/missing/enrolment-tokens", testAdmin, map[string]any{"maxUses": 1, "ttlSeconds": 60}), 404, "token of a missing group")
	mustStatus(t, e.do("POST", "/v1/groups/g0/enrolment-tokens", testAdmin, map[string]any{"maxUses": 0, "ttlSeconds": 60}), 422, "maxUses 0")
	mustStatus(t, e.do("POST", "/v1/groups/g0/enrolment-tokens", testAdmin, map[string]any{"maxUses": 1}), 422, "no expiry")
	mustStatus(t, e.do("POST", "/v1/groups/g0/enrolment-tokens", testAdmin, map[string]any{"maxUses": 1, "ttlSeconds": 60, "idPattern": "("}), 422, "bad pattern")
	r = e.do("POST", "/v1/groups/g0/enrolment-tokens", testAdmin, map[string]any{"maxUses": 1, "ttlSeconds": 60})
	mustStatus(t, r, 201, "mint")
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("the minting answer may be stored")
	}
	var et struct{ ID, Token string }
	r.json(t, &et)
	// Two devices race for the one use.
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.do("POST", "/v1/enrol", et.Token, map[string]any{"deviceId": fmt.Sprintf("race-%d", i)}).status
		}()
	}
	wg.Wait()
	if !(statuses[0] == 201 && statuses[1] == 403 || statuses[0] == 403 && statuses[1] == 201) {
		t.Errorf("racing enrolments answered %v, want one 201 and one 403", statuses)
	}
	var info map[string]any
	e.do("GET", "/v1/groups/g0/enrolment-tokens/"+et.ID, testAdmin, nil).json(t, &info)
	if info["uses"] != float64(1) || info["token"] != nil {
		t.Errorf("token info %v", info)
	}
	mustStatus(t, e.do("GET", "/v1/groups/g1/enrolment-tokens/"+et.ID, testAdmin, nil), 404, "token through another group")
	// The enrolment token may do nothing else.
	mustStatus(t, e.do("GET", "/v1/groups", et.Token, nil), 403, "enrolment token lists groups")
	mustStatus(t, e.do("POST", "/v1/devices/race-0/credentials", et.Token, nil), 403, "enrolment token issues")
	mustStatus(t, e.do("POST", "/v1/enrol", et.Token[:len(et.Token)-4]+"0000", map[string]any{"deviceId": "forged"}), 401, "forged text")
	mustStatus(t, e.do("POST", "/v1/enrol", et.Token, map[string]any{"deviceId": "../x"}), 422, "bad device id")
	// Never the secret, never the enrolment token outside its minting answer.
	answers := e.bodies.String()
	if strings.Contains(answers, testGroupKey) || strings.Contains(e.logs.String(), testGroupKey) {
		t.Error("the group key was answered or logged")
	}
	if strings.Count(answers, et.Token) != 1 || strings.Contains(e.logs.String(), et.Token) {
		t.Error("the enrolment token appears outside its minting answer")
	}
	mustStatus(t, e.do("DELETE", "/v1/groups/g0", testAdmin, nil), 204, "delete group")
	mustStatus(t, e.do("GET", "/v1/groups/g0", testAdmin, nil), 404, "deleted group")
	r = e.do("POST", "/v1/devices/lamp-1/credentials", testAdmin, nil)
	mustStatus(t, r, 409, "issue for a device whose group is gone")
}

// TestEnrolmentRateLimit (issue #18, 4): enrolment tokens have a bucket of
// their own, lower than the staff rate: one token exhausting it gets 429
// with Retry-After, while another enrolment token and the provisioner are
// not slowed. The enrolment-token document shows its failures.
func TestEnrolmentRateLimit(t *testing.T) {
	e := newEnv(t, func(c *envConfig) {
		c.RatePerMinute, c.RateBurst = DefaultRatePerMinute, DefaultRateBurst
		c.ProvisionerRatePerMinute, c.ProvisionerRateBurst = DefaultProvisionerRatePerMinute, DefaultProvisionerRateBurst
		c.EnrolmentRatePerMinute, c.EnrolmentRateBurst = 60, 3
	})
	mustStatus(t, e.do("PUT", "/v1/groups/g0", testAdmin, groupDoc()), 201, "put group")
	var tokens [2]struct{ ID, Token string }
	for i := range tokens {
		r := e.do("POST", "/v1/groups/g0/enrolment-tokens", testAdmin, map[string]any{"maxUses": 100, "ttlSeconds": 60})
		mustStatus(t, r, 201, "mint")
		r.json(t, &tokens[i])
	}
	var last resp
	ok := 0
	for i := range 6 {
		last = e.do("POST", "/v1/enrol", tokens[0].Token, map[string]any{"deviceId": fmt.Sprintf("rl-%d", i)})
		if last.status == 201 {
			ok++
		} else if last.status != 429 {
			t.Fatalf("enrol: %d %s", last.status, last.body)
		}
	}
	if ok != 3 || last.status != 429 || last.header.Get("Retry-After") == "" {
		t.Errorf("%d of 6 enrolments with one token passed (want the burst, 3); last %d, Retry-After %q", ok, last.status, last.header.Get("Retry-After"))
	}
	mustStatus(t, e.do("POST", "/v1/enrol", tokens[1].Token, map[string]any{"deviceId": "other-1"}), 201, "another enrolment token")
	for range 10 {
		mustStatus(t, e.do("GET", "/v1/groups/g0", testAdmin, nil), 200, "the admin is not slowed")
	}
	var info map[string]any
	e.do("GET", "/v1/groups/g0/enrolment-tokens/"+tokens[0].ID, testAdmin, nil).json(t, &info)
	if info["uses"] != float64(3) || info["failures"] != float64(0) {
		t.Errorf("token document %v, want uses 3 and failures 0", info)
	}
	// Deleted and created again: the old tokens enrol nobody.
	mustStatus(t, e.do("DELETE", "/v1/groups/g0", testAdmin, nil), 204, "delete group")
	mustStatus(t, e.do("PUT", "/v1/groups/g0", testAdmin, groupDoc()), 201, "create group again")
	mustStatus(t, e.do("POST", "/v1/enrol", tokens[1].Token, map[string]any{"deviceId": "other-2"}), 403, "old token, new group")
	mustStatus(t, e.do("GET", "/v1/groups/g0/enrolment-tokens/"+tokens[1].ID, testAdmin, nil), 404, "old token under the new group")
}
