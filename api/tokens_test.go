package api

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// wallClock is the wall clock moved on by advance: the service's clock
// (service.Config.Now) in tests of its time rules, instead of sleeping.
type wallClock struct{ off atomic.Int64 }

func (c *wallClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *wallClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// TestTokenLifecycleAPI: tokens minted with a name and a lifetime are
// listed (never their text), a device rotates its own token, the old one
// works for the overlap and then is refused, a second rotation of it is
// refused; bad names and lifetimes are 422 and store nothing.
func TestTokenLifecycleAPI(t *testing.T) {
	clk := &wallClock{}
	e := newEnv(t, func(c *envConfig) {
		c.RotationOverlap = 300 * time.Millisecond
		c.MinTokenLifetime = time.Second
		c.Now = clk.now
	})
	mustStatus(t, e.do("PUT", "/v1/devices/lamp-1", testAdmin, devices()["aliyun"]), 201, "put")
	r := e.do("POST", "/v1/devices/lamp-1/tokens", testAdmin, map[string]any{"name": "lamp 1 factory", "ttlSeconds": 3600})
	mustStatus(t, r, 201, "mint")
	var minted struct {
		ID, Token, Role, DeviceID, Name string
		ExpiresAt                       *time.Time
	}
	r.json(t, &minted)
	if !strings.HasPrefix(minted.Token, "csd_3.") || minted.Name != "lamp 1 factory" || minted.ExpiresAt == nil ||
		time.Until(*minted.ExpiresAt) > time.Hour || time.Until(*minted.ExpiresAt) < 59*time.Minute {
		t.Fatalf("minted %+v", minted)
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"ttlSeconds": 0}, "ttlSeconds"},
		{map[string]any{"ttlSeconds": 40000000}, "ttlSeconds"},
		{map[string]any{"name": strings.Repeat("x", 129)}, "name"},
		{map[string]any{"name": "a\u0007b"}, "name"},
		{map[string]any{"secret": "x"}, ""},
	} {
		r := e.do("POST", "/v1/devices/lamp-1/tokens", testAdmin, tc.body)
		if r.status != 422 && r.status != 400 {
			t.Errorf("mint with %v: %d %s, want 422", tc.body, r.status, r.body)
		}
		if !strings.Contains(string(r.body), tc.field) {
			t.Errorf("mint with %v: %s does not name %s", tc.body, r.body, tc.field)
		}
	}
	list := func() []map[string]any {
		t.Helper()
		r := e.do("GET", "/v1/devices/lamp-1/tokens", testAdmin, nil)
		mustStatus(t, r, 200, "list")
		if strings.Contains(string(r.body), "csd_") || strings.Contains(string(r.body), "hash") {
			t.Fatalf("a listing shows token text or hash: %s", r.body)
		}
		var l struct {
			Tokens []map[string]any
			Next   *string
		}
		r.json(t, &l)
		if l.Next != nil {
			t.Fatalf("one page has a next: %s", r.body)
		}
		return l.Tokens
	}
	if l := list(); len(l) != 1 || l[0]["id"] != minted.ID || l[0]["name"] != "lamp 1 factory" || l[0]["state"] != "active" || l[0]["lifetimeSeconds"] != 3600.0 {
		t.Fatalf("listed %v", l)
	}
	// The device rotates its token, with nothing but the token.
	r = e.do("POST", "/v1/devices/lamp-1/tokens/rotate", minted.Token, nil)
	mustStatus(t, r, 201, "rotate")
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("rotation answer Cache-Control %q", r.header.Get("Cache-Control"))
	}
	var next struct{ ID, Token, Name string }
	r.json(t, &next)
	if next.ID == minted.ID || next.Name != minted.Name || !strings.HasPrefix(next.Token, "csd_3.") {
		t.Fatalf("rotated to %+v", next)
	}
	mustStatus(t, e.do("POST", "/v1/devices/lamp-1/credentials", minted.Token, nil), 200, "old token in the overlap")
	clk.advance(400 * time.Millisecond) // past the overlap
	r = e.do("POST", "/v1/devices/lamp-1/credentials", minted.Token, nil)
	mustStatus(t, r, 401, "old token after the overlap")
	mustStatus(t, e.do("POST", "/v1/devices/lamp-1/credentials", next.Token, nil), 200, "new token")
	if l := list(); len(l) != 2 || l[0]["state"] != "rotated" || l[0]["replacedBy"] != next.ID || l[1]["state"] != "active" {
		t.Fatalf("listed after the rotation %v", l)
	}
	// Rotation is for device tokens, on their own device.
	mustStatus(t, e.do("POST", "/v1/devices/lamp-1/tokens/rotate", testAdmin, nil), 403, "admin rotates")
	// Provisioner tokens and enrolment tokens are listed too.
	mustStatus(t, e.do("POST", "/v1/tokens", testAdmin, map[string]any{"role": "provisioner", "name": "line 2", "ttlSeconds": 86400}), 201, "mint provisioner")
	r = e.do("GET", "/v1/tokens?limit=1", testAdmin, nil)
	mustStatus(t, r, 200, "list provisioner tokens")
	if !strings.Contains(string(r.body), `"name":"line 2"`) || strings.Contains(string(r.body), "csp_") {
		t.Errorf("provisioner tokens: %s", r.body)
	}
	mustStatus(t, e.do("PUT", "/v1/groups/grp", testAdmin, groupDoc()), 201, "put group")
	mustStatus(t, e.do("POST", "/v1/groups/grp/enrolment-tokens", testAdmin, map[string]any{"maxUses": 3, "ttlSeconds": 60, "name": "batch 7"}), 201, "mint enrolment")
	r = e.do("GET", "/v1/groups/grp/enrolment-tokens", testAdmin, nil)
	mustStatus(t, r, 200, "list enrolment tokens")
	if !strings.Contains(string(r.body), `"name":"batch 7"`) || strings.Contains(string(r.body), "cse_") || !strings.Contains(string(r.body), `"next":null`) {
		t.Errorf("enrolment tokens: %s", r.body)
	}
	mustStatus(t, e.do("GET", "/v1/groups/nogroup/enrolment-tokens", testAdmin, nil), 404, "enrolment tokens of no group")
	mustStatus(t, e.do("GET", "/v1/devices/nodevice/tokens", testAdmin, nil), 404, "tokens of no device")
}

// TestExpiredTokenReason: an expired device token is 401 with a reason the
// device can log.
func TestExpiredTokenReason(t *testing.T) {
	clk := &wallClock{}
	e := newEnv(t, func(c *envConfig) { c.MinTokenLifetime = time.Second; c.Now = clk.now })
	mustStatus(t, e.do("PUT", "/v1/devices/lamp-1", testAdmin, devices()["aliyun"]), 201, "put")
	r := e.do("POST", "/v1/devices/lamp-1/tokens", testAdmin, map[string]any{"ttlSeconds": 1})
	mustStatus(t, r, 201, "mint")
	var m struct{ Token string }
	r.json(t, &m)
	clk.advance(1100 * time.Millisecond)
	r = e.do("POST", "/v1/devices/lamp-1/credentials", m.Token, nil)
	mustStatus(t, r, 401, "expired")
	if !strings.Contains(string(r.body), "token expired: re-enrol") {
		t.Errorf("expired token answer %s", r.body)
	}
	r.problem(t)
}
