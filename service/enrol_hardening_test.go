package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/clouds"
	"github.com/credsign/credsign/secrets"
)

// otherGroupKey is a second DPS group key, for a group created again.
const otherGroupKey = "c2Vjb25kIGdyb3VwIGtleSwgNjQgYnl0ZXMgbG9uZywgZm9yIHRoZSByZWNyZWF0ZWQgZ3JvdXAgdGVzdCEhIQ=="

// TestEnrolGroupCreatedAgain (issue #18, 2): an enrolment token belongs to
// the group it was minted for, not to the group's ID.
func TestEnrolGroupCreatedAgain(t *testing.T) {
	s, st := newService(t, Config{})
	enrolGroupCreatedAgain(t, s, st)
}

func enrolGroupCreatedAgain(t *testing.T, s *Service, st secrets.Store) {
	ctx := context.Background()
	putLamps(t, s)
	old, oldText := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 5, TTL: time.Hour})
	// A replace of the group is the same group: the token still enrols.
	relabelled := azureGroup()
	relabelled.Labels = map[string]string{"fleet": "lamps", "batch": "2"}
	if _, created, err := s.PutGroup(ctx, adminCaller, "lamps", relabelled); err != nil || created {
		t.Fatalf("replace: created %v, %v", created, err)
	}
	if _, err := s.Enrol(ctx, mustAuth(t, s, oldText), "before-1", nil); err != nil {
		t.Fatalf("enrol after a replace of the group: %v", err)
	}
	// Deleted, then a new group of the same ID with another key.
	if err := s.DeleteGroup(ctx, adminCaller, "lamps"); err != nil {
		t.Fatal(err)
	}
	again := azureGroup()
	again.Secret = otherGroupKey
	if _, created, err := s.PutGroup(ctx, adminCaller, "lamps", again); err != nil || !created {
		t.Fatalf("create again: created %v, %v", created, err)
	}
	for _, id := range []string{"after-1", "after-2"} {
		if _, err := s.Enrol(ctx, mustAuth(t, s, oldText), id, nil); code(err) != CodeForbidden {
			t.Errorf("old token enrolling %s in the new group: %v, want forbidden", id, err)
		}
		if _, err := st.GetDevice(ctx, id); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("device %s created by the old token: %v", id, err)
		}
	}
	// The new group does not show or revoke the old token as its own.
	if _, err := s.GetEnrolmentToken(ctx, "lamps", old.ID); code(err) != CodeNotFound {
		t.Errorf("GetEnrolmentToken of the old token under the new group: %v, want not found", err)
	}
	if err := s.RevokeEnrolmentToken(ctx, adminCaller, "lamps", old.ID); code(err) != CodeNotFound {
		t.Errorf("RevokeEnrolmentToken of the old token under the new group: %v, want not found", err)
	}
	// A token of the new group enrols, with the new key.
	_, newText := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour})
	e, err := s.Enrol(ctx, mustAuth(t, s, newText), "after-3", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Issue(ctx, mustAuth(t, s, e.Token.Text), "after-3", 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := clouds.Registry().Sign(cloud.Request{Cloud: "azure", Params: map[string]any{"hubHost": "lamps.azure-devices.net", "deviceId": "after-3"},
		Secret: deriveIndependently(t, otherGroupKey, "after-3"), Now: s.now(), TTL: time.Duration(c.ExpiresAt.Sub(c.IssuedAt))})
	if c.Password != want.Password {
		t.Error("the device of the new group does not sign with the new group key")
	}
}

// TestEnrolLegacyTokenGroup: a token record from before the group's
// creation time was kept belongs to the group only if it was minted after
// the group was created.
func TestEnrolLegacyTokenGroup(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	g, _, err := s.PutGroup(ctx, adminCaller, "lamps", azureGroup())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		created time.Time
		ok      bool
	}{
		{"minted after the group", g.CreatedAt.Add(time.Second), true},
		{"minted for an earlier group of the ID", g.CreatedAt.Add(-time.Second), false},
	} {
		et, text := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour})
		rec, v, err := s.readEnrolment(ctx, et.ID)
		if err != nil {
			t.Fatal(err)
		}
		rec.GroupCreatedAt, rec.CreatedAt = time.Time{}, tc.created
		if _, err := s.putEnrolment(ctx, rec, v); err != nil {
			t.Fatal(err)
		}
		_, err = s.Enrol(ctx, mustAuth(t, s, text), "legacy-"+et.ID, nil)
		if (err == nil) != tc.ok || (err != nil && code(err) != CodeForbidden) {
			t.Errorf("%s: %v, want ok=%v (else forbidden)", tc.name, err, tc.ok)
		}
	}
}

// TestIDPatternWholeExpression (issue #18, 7): a pattern is one
// well-formed expression, matched against whole IDs whatever it contains.
func TestIDPatternWholeExpression(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	putLamps(t, s)
	for _, tc := range []struct {
		pattern string
		ok      bool     // accepted at mint
		match   []string // IDs enrolled
		refuse  []string // IDs refused
	}{
		// Text that only makes sense spliced into "^(?:" + p + ")$".
		{pattern: `lamp-[0-9]{3})|(lamp-[0-9]{3}`},
		{pattern: `a)|(.*`},
		{pattern: `a)|.*|(b`},
		{pattern: `)|(`},
		{pattern: `x)$|^(.*`},
		{pattern: `lamp\`},
		{pattern: `(lamp`},
		{pattern: `lamp)`},
		{pattern: `[a-`},
		// Well-formed, anchored whatever they contain.
		{pattern: `lamp-[0-9]{3}`, ok: true, match: []string{"lamp-001"}, refuse: []string{"anything-lamp-001", "lamp-0011", "xlamp-001"}},
		{pattern: `lamp-[0-9]{3}|kettle`, ok: true, match: []string{"lamp-001", "kettle"}, refuse: []string{"anything-lamp-001", "kettle-1", "lamp-001kettle"}},
		{pattern: `(lamp-[0-9]{3})|(lamp-[0-9]{3})`, ok: true, match: []string{"lamp-001"}, refuse: []string{"anything-lamp-001"}},
		{pattern: `^lamp`, ok: true, match: []string{"lamp"}, refuse: []string{"lamp-1"}},
		{pattern: `lamp$|x`, ok: true, match: []string{"lamp", "x"}, refuse: []string{"a-lamp", "lamp-x"}},
		{pattern: `(?m)lamp$|^x`, ok: true, match: []string{"lamp", "x"}, refuse: []string{"a-lamp", "x-1"}},
		{pattern: `(?i)LAMP-\d+`, ok: true, match: []string{"lamp-7"}, refuse: []string{"my-lamp-7"}},
		{pattern: `.*`, ok: true, match: []string{"anything"}},
		// \Q quotes to the end: spliced, it would swallow the closing anchor.
		{pattern: `\Qlamp-1.`, ok: true, match: []string{"lamp-1."}, refuse: []string{"lamp-1x", "lamp-1.x"}},
	} {
		_, text, err := s.CreateEnrolmentToken(ctx, adminCaller, "lamps", EnrolmentTokenRequest{MaxUses: 10, TTL: time.Hour, IDPattern: tc.pattern})
		if !tc.ok {
			if !hasField(err, "idPattern") {
				t.Errorf("pattern %q: %v, want 422 on idPattern", tc.pattern, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("pattern %q: %v", tc.pattern, err)
			continue
		}
		for _, id := range tc.refuse {
			if _, err := s.Enrol(ctx, mustAuth(t, s, text), id, nil); code(err) != CodeForbidden {
				t.Errorf("pattern %q enrolled %q: %v, want forbidden", tc.pattern, id, err)
			}
		}
		for _, id := range tc.match {
			if _, err := s.store.GetDevice(ctx, id); err == nil {
				if err := s.DeleteDevice(ctx, adminCaller, id); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Enrol(ctx, mustAuth(t, s, text), id, nil); err != nil {
				t.Errorf("pattern %q did not enrol %q: %v", tc.pattern, id, err)
			}
		}
	}
	// A record stored before patterns were parsed on their own, with a
	// pattern that escapes its anchors, enrols nobody.
	et, text := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 10, TTL: time.Hour, IDPattern: "lamp"})
	rec, v, err := s.readEnrolment(ctx, et.ID)
	if err != nil {
		t.Fatal(err)
	}
	rec.IDPattern = `a)|(.*`
	if _, err := s.putEnrolment(ctx, rec, v); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"anything", "a"} {
		if _, err := s.Enrol(ctx, mustAuth(t, s, text), id, nil); code(err) != CodeForbidden {
			t.Errorf("stored escaping pattern enrolled %q: %v, want forbidden", id, err)
		}
	}
	// Compiled once: the same pattern is the same compiled expression.
	a, _ := s.patterns.get(`lamp-[0-9]{3}`)
	b, _ := s.patterns.get(`lamp-[0-9]{3}`)
	if a == nil || a != b {
		t.Error("a pattern is compiled again for every enrolment")
	}
}

// FuzzIDPattern: compilePattern never panics, and a pattern it accepts
// matches exactly the IDs the pattern matches as a whole. The oracle is
// leftmost-longest search with the pattern unanchored (a whole match exists
// exactly when the longest match at the leftmost start spans the ID), not
// string splicing, which "\\Q" or "a)|(.*" would defeat.
func FuzzIDPattern(f *testing.F) {
	for _, seed := range [][2]string{{`lamp-[0-9]{3}`, "lamp-001"}, {`a)|(.*`, "x"}, {`(?m)a$|^b`, "a"}, {`^lamp`, "lamp-1"},
		{`\`, "x"}, {`(?s).*`, "anything"}, {`a|b|`, ""}, {`lamp-[0-9]{3})|(lamp-[0-9]{3}`, "anything-lamp-001"}, {`\Q`, "0"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, p, id string) {
		re, err := compilePattern(p)
		if err != nil {
			return
		}
		oracle, err := regexp.Compile(p)
		if err != nil {
			t.Fatalf("pattern %q accepted, but does not compile on its own", p)
		}
		oracle.Longest()
		loc := oracle.FindStringIndex(id)
		whole := loc != nil && loc[0] == 0 && loc[1] == len(id)
		if got := re.MatchString(id); got != whole {
			t.Fatalf("pattern %q, ID %q: matched %v, matches as a whole %v", p, id, got, whole)
		}
	})
}

// failingRegistrar is a Registrar whose cloud always refuses, counting
// the calls and the most that were under way at once.
type failingRegistrar struct {
	calls, now, most atomic.Int64
	hold             time.Duration
}

func (r *failingRegistrar) Register(ctx context.Context, req RegistrationRequest) (RegistrationResult, error) {
	r.calls.Add(1)
	n := r.now.Add(1)
	defer r.now.Add(-1)
	for {
		m := r.most.Load()
		if n <= m || r.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(r.hold)
	return RegistrationResult{}, fmt.Errorf("stand-in registration of %s: %w", req.DeviceID, ErrCloudRefused)
}

func registeringGroup() GroupDocument {
	return GroupDocument{Cloud: "aliyun", Secret: "product-secret-1", Params: map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": "{deviceId}"},
		Registration: &secrets.Registration{Kind: RegistrationAliyunDynamic, Params: map[string]string{"region": "cn-shanghai"}}}
}

// TestEnrolFailureBudget (issue #18, 4): failed registrations give their
// use back but count, and past the budget the token calls the cloud no
// more; failures that never called the cloud do not count.
func TestEnrolFailureBudget(t *testing.T) {
	reg := &failingRegistrar{}
	s, st := newService(t, Config{Registrar: reg, MaxEnrolmentFailures: 3})
	enrolFailureBudget(t, s, st, reg)
}

func enrolFailureBudget(t *testing.T, s *Service, _ secrets.Store, reg *failingRegistrar) {
	ctx := context.Background()
	if _, _, err := s.PutGroup(ctx, adminCaller, "sensors", registeringGroup()); err != nil {
		t.Fatal(err)
	}
	et, text := mintEnrolment(t, s, "sensors", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour})
	for i := range 20 {
		_, err := s.Enrol(ctx, mustAuth(t, s, text), fmt.Sprintf("s-%d", i), nil)
		want := CodeCloudRefused
		if i >= 3 {
			want = CodeForbidden
		}
		if code(err) != want {
			t.Errorf("attempt %d: %v, want %s", i, err, want)
		}
	}
	if n := reg.calls.Load(); n != 3 {
		t.Errorf("%d registration calls with a failure budget of 3", n)
	}
	got, err := s.GetEnrolmentToken(ctx, "sensors", et.ID)
	if err != nil || got.Uses != 0 || got.Failures != 3 {
		t.Errorf("token after the budget: uses %d, failures %d, %v; want 0 and 3", got.Uses, got.Failures, err)
	}
	// Refusals before the cloud is called do not count: an existing device
	// (a device re-running enrol after losing its token file).
	putLamps(t, s)
	if _, _, err := s.PutDevice(ctx, adminCaller, "lamp-1", Document{Group: "lamps"}, Precondition{}); err != nil {
		t.Fatal(err)
	}
	lt, ltext := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour})
	for range 5 {
		if _, err := s.Enrol(ctx, mustAuth(t, s, ltext), "lamp-1", nil); code(err) != CodeConflict {
			t.Errorf("enrol of an existing device: %v, want conflict", err)
		}
	}
	if _, err := s.Enrol(ctx, mustAuth(t, s, ltext), "lamp-2", nil); err != nil {
		t.Errorf("enrol after refusals that called no cloud: %v", err)
	}
	if got, _ := s.GetEnrolmentToken(ctx, "lamps", lt.ID); got.Failures != 0 || got.Uses != 1 {
		t.Errorf("uses %d, failures %d; want 1 and 0", got.Uses, got.Failures)
	}
}

// TestEnrolOneRegistrationInFlight (issue #18, 4): many enrolments at once
// with one token call the cloud one at a time; two tokens do not wait for
// each other.
func TestEnrolOneRegistrationInFlight(t *testing.T) {
	reg := &failingRegistrar{hold: 20 * time.Millisecond}
	s, _ := newService(t, Config{Registrar: reg, MaxEnrolmentFailures: 1000})
	ctx := context.Background()
	if _, _, err := s.PutGroup(ctx, adminCaller, "sensors", registeringGroup()); err != nil {
		t.Fatal(err)
	}
	var texts [2]string
	for i := range texts {
		_, texts[i] = mintEnrolment(t, s, "sensors", EnrolmentTokenRequest{MaxUses: 100, TTL: time.Hour})
	}
	run := func(tokens int) {
		reg.most.Store(0)
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := s.Authenticate(ctx, "Bearer "+texts[i%tokens])
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Enrol(ctx, p, fmt.Sprintf("race-%d-%d", tokens, i), nil); code(err) != CodeCloudRefused {
					t.Errorf("enrol: %v", err)
				}
			}()
		}
		wg.Wait()
	}
	run(1)
	if m := reg.most.Load(); m != 1 {
		t.Errorf("one token: %d registrations under way at once, want 1", m)
	}
	run(2)
	if m := reg.most.Load(); m != 2 {
		t.Errorf("two tokens: at most %d registrations under way at once, want 2", m)
	}
	if len(s.inflight.lock) != 0 {
		t.Errorf("%d per-token locks left behind", len(s.inflight.lock))
	}
	// A request that ends while it waits gives up without calling the cloud.
	release, err := s.inflight.acquire(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := s.inflight.acquire(short, "held"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting past the request's deadline: %v", err)
	}
	release()
	if len(s.inflight.lock) != 0 {
		t.Error("the lock of a token outlived its users")
	}
}

// TestForgedEnrolmentTokensCached (issue #18, 10): forged enrolment tokens
// cost a store read per ID, not per request: an unknown ID is cached as
// unknown, a known ID's hash is cached and a text that does not hash to it
// is refused without a read. The real token still reads its record.
func TestForgedEnrolmentTokensCached(t *testing.T) {
	s, st := newService(t, Config{})
	ctx := context.Background()
	putLamps(t, s)
	et, text := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 2, TTL: time.Hour})
	reads := func(tok string, n int) int64 {
		before := st.keys.Load()
		for range n {
			if _, err := s.Authenticate(ctx, "Bearer "+tok); code(err) != CodeUnauthorized {
				t.Fatalf("forged token: %v, want unauthorized", err)
			}
		}
		return st.keys.Load() - before
	}
	unknown := PrefixEnrolment + "0123456789abcdef0123." + strings.Repeat("0", 64)
	if n := reads(unknown, 500); n != 1 {
		t.Errorf("500 forged tokens of one unknown ID: %d store reads, want 1", n)
	}
	before := st.keys.Load()
	for i := range 20 {
		if _, err := s.Authenticate(ctx, fmt.Sprintf("Bearer %s%020d.%s", PrefixEnrolment, i, strings.Repeat("0", 64))); code(err) != CodeUnauthorized {
			t.Fatal(err)
		}
	}
	if n := st.keys.Load() - before; n != 20 {
		t.Errorf("20 distinct unknown IDs: %d reads, want 20 (one each)", n)
	}
	// The real ID with another text: one read until the hash is known.
	wrong := PrefixEnrolment + et.ID + "." + strings.Repeat("f", 64)
	if n := reads(wrong, 500); n > 1 {
		t.Errorf("500 forged texts of a real ID: %d store reads, want at most 1", n)
	}
	before = st.keys.Load()
	for i := range 3 {
		p := mustAuth(t, s, text)
		if i < 2 {
			if _, err := s.Enrol(ctx, p, fmt.Sprintf("real-%d", i), nil); err != nil {
				t.Fatal(err)
			}
		} else if _, err := s.Enrol(ctx, p, "real-2", nil); code(err) != CodeForbidden {
			t.Errorf("third use of a two-use token: %v", err) // the record was read fresh
		}
	}
	if n := st.keys.Load() - before; n < 3 {
		t.Errorf("the real token read its record %d times in 3 authentications", n)
	}
	// A token minted here is found at once even if its ID was probed as
	// unknown before (impossible to guess, but the cache must not hide it).
	s2, st2 := newService(t, Config{})
	putLamps(t, s2)
	_ = st2
	et2, text2 := mintEnrolment(t, s2, "lamps", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour})
	s2.cache.enrolments.Add(et2.ID, entry[string]{notFound: true, at: time.Now()})
	s2.cache.forgetEnrolment(et2.ID)
	mustAuth(t, s2, text2)
}

// TestGroupIdentity (issue #18, 8): two devices of a group never sign as
// one cloud identity, whichever is written first.
func TestGroupIdentity(t *testing.T) {
	s, st := newService(t, Config{})
	ctx := context.Background()
	putLamps(t, s)
	// A provisioner's device naming itself as another ID would be named.
	if _, _, err := s.PutDevice(ctx, adminCaller, "site1.lamp-050", Document{Group: "lamps", Params: map[string]any{"deviceId": "lamp-050"}}, Precondition{}); !hasField(err, "params.deviceId") {
		t.Fatalf("site1.lamp-050 as deviceId lamp-050: %v, want 422 on params.deviceId", err)
	}
	res := s.ImportDevices(ctx, adminCaller, []ImportItem{
		{ID: "site2.lamp-051", Doc: Document{Group: "lamps", Params: map[string]any{"deviceId": "lamp-051"}}},
		{ID: "lamp-052", Doc: Document{Group: "lamps", Params: map[string]any{"deviceId": "lamp-052"}}},
	}, ImportCreate, false)
	if !hasField(res[0].Err, "params.deviceId") || res[1].Err != nil {
		t.Errorf("import: %v, %v; want 422 on params.deviceId, then ok", res[0].Err, res[1].Err)
	}
	// Enrolled first, then a provisioner's device claiming its identity.
	_, text := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 5, TTL: time.Hour})
	e, err := s.Enrol(ctx, mustAuth(t, s, text), "lamp-050", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutDevice(ctx, adminCaller, "site1.lamp-050", Document{Group: "lamps", Params: map[string]any{"deviceId": "lamp-050"}}, Precondition{}); !hasField(err, "params.deviceId") {
		t.Errorf("claiming an enrolled device's identity: %v", err)
	}
	// Nobody else derives lamp-050's key: every device of the group has
	// the registration ID its template gives its ID.
	p, err := s.ListDevices(ctx, ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, d := range p.Devices {
		full, _ := st.GetDevice(ctx, d.ID)
		if d.Group != "lamps" {
			continue
		}
		rid := registrationID(full)
		if other, ok := seen[rid]; ok {
			t.Errorf("%s and %s share the registration ID %s", other, d.ID, rid)
		}
		seen[rid] = d.ID
	}
	if e.Device.Params["deviceId"] != "lamp-050" {
		t.Errorf("enrolled params %v", e.Device.Params)
	}
	// A template that gives every device one registration ID is refused,
	// and a replace may not change the params derived from the ID.
	one := azureGroup()
	one.Params["deviceId"] = "lamp"
	if _, _, err := s.PutGroup(ctx, adminCaller, "one", one); !hasField(err, "params.deviceId") {
		t.Errorf("a template with one deviceId for all: %v", err)
	}
	for _, tc := range []struct {
		params map[string]any
		ok     bool
	}{
		{map[string]any{"hubHost": "other.azure-devices.net", "deviceId": "{deviceId}"}, true},
		{map[string]any{"hubHost": "lamps.azure-devices.net", "deviceId": "x-{deviceId}"}, false},
		{map[string]any{"hubHost": "{deviceId}.azure-devices.net", "deviceId": "{deviceId}"}, false},
	} {
		doc := azureGroup()
		doc.Params = tc.params
		_, _, err := s.PutGroup(ctx, adminCaller, "lamps", doc)
		if tc.ok != (err == nil) || (err != nil && code(err) != CodeConflict) {
			t.Errorf("replace with template %v: %v, want ok=%v (else conflict)", tc.params, err, tc.ok)
		}
	}
	// Reading a device and writing it back is not a claim.
	d, err := s.GetDevice(ctx, "lamp-050")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(d.Params)
	var params map[string]any
	_ = json.Unmarshal(b, &params)
	if _, _, err := s.PutDevice(ctx, adminCaller, "lamp-050", Document{Group: "lamps", Params: params}, Precondition{}); err != nil {
		t.Errorf("writing back a device as read: %v", err)
	}
}

// registrationID is the ID an azure device of a group derives its key
// with (cloud/azure's DeriveDeviceKey): its deviceId param, else its ID.
func registrationID(d secrets.Device) string {
	if v, ok := d.Params["deviceId"].(string); ok && v != "" {
		return v
	}
	return d.ID
}
