package service

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/clouds"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/secrets"
)

// groupKey is an Azure DPS group key (base64 of 64 bytes, as the portal makes them).
const groupKey = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="

// deriveIndependently is the Azure DPS group derivation written out here,
// without azure.DeriveGroupKey: base64(HMAC-SHA256(base64dec(key), id)).
func deriveIndependently(t testing.TB, key, id string) string {
	t.Helper()
	m := hmac.New(sha256.New, testutil.Decode(t, base64.StdEncoding.DecodeString, key))
	m.Write([]byte(id))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func azureGroup() GroupDocument {
	return GroupDocument{Cloud: "azure", Secret: groupKey,
		Params: map[string]any{"hubHost": "lamps.azure-devices.net", "deviceId": "{deviceId}"}, Labels: map[string]string{"fleet": "lamps"}}
}

// putLamps creates the group lamps (azureGroup) as the admin.
func putLamps(t testing.TB, s *Service) {
	t.Helper()
	if _, _, err := s.PutGroup(context.Background(), adminCaller, "lamps", azureGroup()); err != nil {
		t.Fatal(err)
	}
}

// groupReads counts group reads on top of counting.
type groupReads struct {
	*counting
	groups atomic.Int64
}

func (g *groupReads) GetGroup(ctx context.Context, id string) (secrets.Group, error) {
	g.groups.Add(1)
	return g.counting.GetGroup(ctx, id)
}

func mustAuth(t *testing.T, s *Service, text string) Principal {
	t.Helper()
	p, err := s.Authenticate(context.Background(), "Bearer "+text)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return p
}

func code(err error) Code {
	var se *Error
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// TestGroupDerivedIssuance: an azure device of a group with no secret of
// its own signs with the key derived from the group key (checked against
// a derivation written independently), a warm issuance reads nothing, a
// cold one reads the device and the group once each.
func TestGroupDerivedIssuance(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s, st := newService(t, Config{Now: func() time.Time { return now }})
	ctx := context.Background()
	if _, created, err := s.PutGroup(ctx, adminCaller, "lamps", azureGroup()); err != nil || !created {
		t.Fatalf("PutGroup: %v %v", created, err)
	}
	d, _, err := s.PutDevice(ctx, adminCaller, "lamp-1", Document{Group: "lamps"}, Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Group != "lamps" || d.Secret != "" || d.Params["deviceId"] != "lamp-1" || d.Params["hubHost"] != "lamps.azure-devices.net" {
		t.Fatalf("stored device %+v", d)
	}
	got, err := s.Issue(ctx, adminCaller, "lamp-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want, err := clouds.Registry().Sign(cloud.Request{Cloud: "azure", DeviceID: "lamp-1", Params: d.Params,
		Secret: deriveIndependently(t, groupKey, "lamp-1"), Now: now, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got.Password != want.Password || got.Username != want.Username {
		t.Fatalf("derived credentials differ:\n got %s\nwant %s", got.Password, want.Password)
	}
	// A device's params override the template, but not those the template
	// derives from the device ID (its identity at the cloud, and its key):
	// "lamp-2" may not name itself "lamp-1" (or anything else).
	for _, own := range []string{"lamp-1", "reg-2"} {
		_, _, err := s.PutDevice(ctx, adminCaller, "lamp-2", Document{Group: "lamps", Params: map[string]any{"deviceId": own}}, Precondition{})
		if !hasField(err, "params.deviceId") {
			t.Errorf("lamp-2 naming itself %q: %v, want 422 on params.deviceId", own, err)
		}
	}
	d2, _, err := s.PutDevice(ctx, adminCaller, "lamp-2", Document{Group: "lamps", Params: map[string]any{"deviceId": "lamp-2", "hubHost": "other.azure-devices.net"}}, Precondition{})
	if err != nil || d2.Params["deviceId"] != "lamp-2" || d2.Params["hubHost"] != "other.azure-devices.net" {
		t.Fatalf("the template's own value, and another param overridden: %+v %v", d2, err)
	}
	// The registration ID is the deviceId param.
	regGroup := azureGroup()
	regGroup.Params["deviceId"] = "reg-{deviceId}"
	if _, _, err := s.PutGroup(ctx, adminCaller, "lamps-reg", regGroup); err != nil {
		t.Fatal(err)
	}
	d3, _, err := s.PutDevice(ctx, adminCaller, "lamp-3", Document{Group: "lamps-reg"}, Precondition{})
	if err != nil || d3.Params["deviceId"] != "reg-lamp-3" {
		t.Fatalf("device of lamps-reg: %+v %v", d3, err)
	}
	c3, _ := s.Issue(ctx, adminCaller, "lamp-3", time.Hour)
	w3, _ := clouds.Registry().Sign(cloud.Request{Cloud: "azure", Params: d3.Params, Secret: deriveIndependently(t, groupKey, "reg-lamp-3"), Now: now, TTL: time.Hour})
	if c3.Password != w3.Password {
		t.Error("the key is not derived from the deviceId param")
	}
	// Reads: a fresh replica on the same store.
	gr := &groupReads{counting: st}
	s2, err := New(Config{Store: gr, AdminToken: admin, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	st.reads.Store(0)
	if _, err := s2.Issue(ctx, adminCaller, "lamp-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if r, g := st.reads.Load(), gr.groups.Load(); r != 1 || g != 1 {
		t.Errorf("cold issuance of a group device: %d device/token/key reads and %d group reads, want 1 and 1", r, g)
	}
	st.reads.Store(0)
	gr.groups.Store(0)
	if _, err := s2.Issue(ctx, adminCaller, "lamp-2", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Issue(ctx, adminCaller, "lamp-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if r, g := st.reads.Load(), gr.groups.Load(); r != 1 || g != 0 {
		t.Errorf("second device of a cached group, then a warm one: %d reads, %d group reads, want 1 and 0", r, g)
	}
	// Group gone: no credentials, a clear conflict.
	if err := s.DeleteGroup(ctx, adminCaller, "lamps"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Issue(ctx, adminCaller, "lamp-1", time.Hour); code(err) != CodeConflict {
		t.Errorf("issue after the group was deleted: %v, want conflict", err)
	}
}

// TestGroupChecks: the group document's faults, and a device of a group
// whose cloud does not derive keys needs a secret (or a registration).
func TestGroupChecks(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	cases := []struct {
		name  string
		doc   GroupDocument
		field string
	}{
		{"unknown cloud", GroupDocument{Cloud: "nope", Secret: "x"}, "cloud"},
		{"no secret", GroupDocument{Cloud: "azure", Params: map[string]any{"hubHost": "h", "deviceId": "{deviceId}"}}, "secret"},
		{"azure key not base64", GroupDocument{Cloud: "azure", Secret: "not base64!", Params: map[string]any{"hubHost": "h", "deviceId": "{deviceId}"}}, "secret"},
		{"template misses a param", GroupDocument{Cloud: "azure", Secret: groupKey, Params: map[string]any{"deviceId": "{deviceId}"}}, "params.hubHost"},
		{"control character", GroupDocument{Cloud: "azure", Secret: groupKey + "\n", Params: map[string]any{"hubHost": "h"}}, "secret"},
		{"registration without registrar", GroupDocument{Cloud: "aliyun", Secret: "ps", Registration: &secrets.Registration{Kind: RegistrationAliyunDynamic}}, "registration"},
		{"unknown registration", GroupDocument{Cloud: "aliyun", Secret: "ps", Registration: &secrets.Registration{Kind: "carrier-pigeon"}}, "registration.kind"},
		{"aliyun without registration", GroupDocument{Cloud: "aliyun", Secret: "ps", Params: map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": "{deviceId}"}}, "secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.PutGroup(ctx, adminCaller, "g", tc.doc)
			fields := InvalidFields(err)
			found := false
			for _, f := range fields {
				found = found || f.Field == tc.field
				if strings.Contains(f.Reason, groupKey) {
					t.Errorf("reason quotes the secret")
				}
			}
			if !found {
				t.Fatalf("error %v, want a fault of %s", err, tc.field)
			}
		})
	}
	if _, _, err := s.PutDevice(ctx, adminCaller, "x", Document{Group: "missing"}, Precondition{}); !hasField(err, "group") {
		t.Errorf("device of a missing group: %v", err)
	}
	putLamps(t, s)
	if _, _, err := s.PutDevice(ctx, adminCaller, "x", Document{Group: "lamps", Cloud: "aliyun"}, Precondition{}); !hasField(err, "cloud") {
		t.Errorf("device of another cloud than its group: %v", err)
	}
	if _, _, err := s.PutDevice(ctx, adminCaller, "x", Document{Params: map[string]any{}}, Precondition{}); !hasField(err, "cloud") {
		t.Errorf("device without cloud or group: %v", err)
	}
	g, err := s.GetGroup(ctx, "lamps")
	if err != nil || g.Secret != "" {
		t.Errorf("GetGroup returns the secret or fails: %v", err)
	}
	list, next, err := s.ListGroups(ctx, Principal{}, "", 10)
	if err != nil || len(list) != 1 || next != "" || list[0].Secret != "" {
		t.Errorf("ListGroups: %d groups, next %q, %v", len(list), next, err)
	}
}

func hasField(err error, field string) bool {
	for _, f := range InvalidFields(err) {
		if f.Field == field {
			return true
		}
	}
	return false
}

func mintEnrolment(t *testing.T, s *Service, group string, req EnrolmentTokenRequest) (EnrolmentToken, string) {
	t.Helper()
	et, text, err := s.CreateEnrolmentToken(context.Background(), adminCaller, group, req)
	if err != nil {
		t.Fatalf("CreateEnrolmentToken: %v", err)
	}
	if !strings.HasPrefix(text, PrefixEnrolment+et.ID+".") {
		t.Fatalf("token text has the wrong form")
	}
	return et, text
}

// TestEnrolRefusals: past the use limit, outside the pattern, after
// revocation and after expiry no device is created; revocation does not
// touch devices already enrolled; an existing device is never enrolled.
func TestEnrolRefusals(t *testing.T) {
	clk := &wallClock{}
	s, st := newService(t, Config{Now: clk.now})
	ctx := context.Background()
	putLamps(t, s)
	et, text := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 2, TTL: time.Hour, IDPattern: "lamp-[0-9]+"})
	p := mustAuth(t, s, text)
	if p.Role != RoleEnrolment || p.TokenID != et.ID {
		t.Fatalf("principal %+v", p)
	}
	// Outside the pattern (anchored: "xlamp-1" and "lamp-1x" do not match).
	for _, id := range []string{"other-1", "xlamp-1", "lamp-1x"} {
		if _, err := s.Enrol(ctx, p, id, nil); code(err) != CodeForbidden {
			t.Errorf("enrol %q outside the pattern: %v, want forbidden", id, err)
		}
	}
	// An existing device is refused and the use given back.
	if _, _, err := s.PutDevice(ctx, adminCaller, "lamp-0", Document{Group: "lamps"}, Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrol(ctx, mustAuth(t, s, text), "lamp-0", nil); code(err) != CodeConflict {
		t.Errorf("enrol an existing device: %v, want conflict", err)
	}
	if got, _ := s.GetEnrolmentToken(ctx, "lamps", et.ID); got.Uses != 0 {
		t.Errorf("uses after refusals: %d, want 0", got.Uses)
	}
	var enrolled []Enrolled
	for _, id := range []string{"lamp-1", "lamp-2"} {
		e, err := s.Enrol(ctx, mustAuth(t, s, text), id, nil)
		if err != nil {
			t.Fatalf("enrol %s: %v", id, err)
		}
		if e.Device.Group != "lamps" || e.Device.Labels["fleet"] != "lamps" || !strings.HasPrefix(e.Token.Text, deviceTokenV2) {
			t.Fatalf("enrolled %+v", e.Device)
		}
		enrolled = append(enrolled, e)
	}
	if _, err := s.Enrol(ctx, mustAuth(t, s, text), "lamp-3", nil); code(err) != CodeForbidden {
		t.Errorf("enrol past the limit: %v, want forbidden", err)
	}
	if _, err := st.GetDevice(ctx, "lamp-3"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("a device was created past the limit: %v", err)
	}
	// The enrolled devices' tokens issue.
	dp := mustAuth(t, s, enrolled[0].Token.Text)
	if _, err := s.Issue(ctx, dp, "lamp-1", 0); err != nil {
		t.Fatalf("issue for an enrolled device: %v", err)
	}
	// Revoke: no new enrolments (even with room left), the enrolled keep working.
	et2, text2 := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 10, TTL: time.Hour})
	p2 := mustAuth(t, s, text2)
	if err := s.RevokeEnrolmentToken(ctx, adminCaller, "lamps", et2.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeEnrolmentToken(ctx, adminCaller, "other", et2.ID); code(err) != CodeNotFound {
		t.Errorf("revoke through another group: %v, want not found", err)
	}
	if _, err := s.Authenticate(ctx, "Bearer "+text2); code(err) != CodeUnauthorized {
		t.Errorf("revoked enrolment token authenticates: %v", err)
	}
	if _, err := s.Enrol(ctx, p2, "lamp-9", nil); code(err) != CodeUnauthorized {
		t.Errorf("enrol with a token revoked after it authenticated: %v, want unauthorized", err)
	}
	if err := s.RevokeEnrolmentToken(ctx, adminCaller, "lamps", et.ID); err != nil {
		t.Fatal(err)
	}
	for _, e := range enrolled {
		if _, err := s.Issue(ctx, mustAuth(t, s, e.Token.Text), e.Device.ID, 0); err != nil {
			t.Errorf("%s after its enrolment token was revoked: %v", e.Device.ID, err)
		}
	}
	// Expiry.
	_, text3 := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 10, TTL: time.Second})
	p3 := mustAuth(t, s, text3)
	clk.advance(1100 * time.Millisecond)
	if _, err := s.Authenticate(ctx, "Bearer "+text3); code(err) != CodeUnauthorized {
		t.Errorf("expired enrolment token authenticates: %v", err)
	}
	if _, err := s.Enrol(ctx, p3, "lamp-8", nil); code(err) != CodeUnauthorized {
		t.Errorf("enrol with a token that expired after it authenticated: %v", err)
	}
	// Forged texts.
	for _, f := range []string{text[:len(text)-1] + "0", PrefixEnrolment + et.ID, PrefixEnrolment + "zz." + strings.Repeat("0", 64), PrefixEnrolment + "../x.y"} {
		if f == text {
			continue
		}
		if _, err := s.Authenticate(ctx, "Bearer "+f); code(err) != CodeUnauthorized {
			t.Errorf("forged %q: %v", f, err)
		}
	}
	// Other roles may not enrol.
	if _, err := s.Enrol(ctx, adminCaller, "lamp-7", nil); code(err) != CodeForbidden {
		t.Errorf("admin enrol: %v", err)
	}
}

// TestEnrolMintChecks: the request's faults.
func TestEnrolMintChecks(t *testing.T) {
	s, _ := newService(t, Config{})
	ctx := context.Background()
	putLamps(t, s)
	past, far := time.Now().Add(-time.Minute), time.Now().Add(400*24*time.Hour)
	cases := []struct {
		req   EnrolmentTokenRequest
		field string
	}{
		{EnrolmentTokenRequest{MaxUses: 0, TTL: time.Hour}, "maxUses"},
		{EnrolmentTokenRequest{MaxUses: MaxEnrolmentUses + 1, TTL: time.Hour}, "maxUses"},
		{EnrolmentTokenRequest{MaxUses: 1}, "ttlSeconds"},
		{EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour, ExpiresAt: &far}, "expiresAt"},
		{EnrolmentTokenRequest{MaxUses: 1, ExpiresAt: &past}, "expiresAt"},
		{EnrolmentTokenRequest{MaxUses: 1, ExpiresAt: &far}, "expiresAt"},
		{EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour, IDPattern: "lamp-("}, "idPattern"},
	}
	for i, tc := range cases {
		if _, _, err := s.CreateEnrolmentToken(ctx, adminCaller, "lamps", tc.req); !hasField(err, tc.field) {
			t.Errorf("case %d: %v, want a fault of %s", i, err, tc.field)
		}
	}
	if _, _, err := s.CreateEnrolmentToken(ctx, adminCaller, "nope", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour}); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("token for a missing group: %v", err)
	}
	soon := time.Now().Add(time.Hour)
	et, _ := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: 3, ExpiresAt: &soon})
	if !et.ExpiresAt.Equal(soon.UTC()) || et.MaxUses != 3 {
		t.Errorf("minted %+v", et)
	}
	if _, err := s.GetEnrolmentToken(ctx, "other", et.ID); code(err) != CodeNotFound {
		t.Errorf("get through another group: %v", err)
	}
}

// TestEnrolConcurrentAtLimit: many enrolments racing for the last use of a
// token: exactly one wins, and exactly one device exists afterwards.
func TestEnrolConcurrentAtLimit(t *testing.T) {
	s, st := newService(t, Config{})
	racingEnrolments(t, s, st)
}

// racingEnrolments races enrolments for the last uses of tokens of s, whose
// store is st.
func racingEnrolments(t *testing.T, s *Service, st secrets.Store) {
	ctx := context.Background()
	putLamps(t, s)
	for _, limit := range []int64{1, 3} {
		et, text := mintEnrolment(t, s, "lamps", EnrolmentTokenRequest{MaxUses: limit, TTL: time.Hour})
		const n = 12
		// Every caller authenticated before any enrolled: all saw uses 0.
		ps := make([]Principal, n)
		for i := range ps {
			ps[i] = mustAuth(t, s, text)
		}
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Enrol(ctx, ps[i], fmt.Sprintf("race-%d-%d", limit, i), nil)
				switch {
				case err == nil:
					ok.Add(1)
				case code(err) == CodeForbidden:
					refused.Add(1)
				default:
					t.Errorf("enrol: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != limit || refused.Load() != n-limit {
			t.Errorf("limit %d: %d enrolled, %d refused", limit, ok.Load(), refused.Load())
		}
		created := 0
		for i := range n {
			if _, err := st.GetDevice(ctx, fmt.Sprintf("race-%d-%d", limit, i)); err == nil {
				created++
			}
		}
		if got, _ := s.GetEnrolmentToken(ctx, "lamps", et.ID); got.Uses != limit || created != int(limit) {
			t.Errorf("limit %d: uses %d, devices %d", limit, got.Uses, created)
		}
	}
}

// standInRegistrar is a test stand-in for the registration package (which
// talks to the clouds; it is wired in by cmd/credsign): it answers like a
// cloud's dynamic registration, or fails as told.
type standInRegistrar struct {
	calls atomic.Int64
	fail  error
	seen  RegistrationRequest
	mu    sync.Mutex
}

func (r *standInRegistrar) Register(_ context.Context, req RegistrationRequest) (RegistrationResult, error) {
	r.calls.Add(1)
	r.mu.Lock()
	r.seen = req
	r.mu.Unlock()
	if r.fail != nil {
		return RegistrationResult{}, fmt.Errorf("stand-in registration of %s: %w", req.DeviceID, r.fail)
	}
	return RegistrationResult{Params: map[string]any{"deviceName": req.DeviceID}, Secret: "dyn-secret-" + req.DeviceID}, nil
}

// TestEnrolRegistration: a group that registers its devices calls the
// Registrar with the group's registration and secret, stores the secret it
// returns, and gives the use back when the cloud refuses or is unreachable.
func TestEnrolRegistration(t *testing.T) {
	reg := &standInRegistrar{}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s, st := newService(t, Config{Registrar: reg, Now: func() time.Time { return now }})
	ctx := context.Background()
	doc := GroupDocument{Cloud: "aliyun", Secret: "product-secret-1", Params: map[string]any{"productKey": "a1B2c3D4e5F"},
		Registration: &secrets.Registration{Kind: RegistrationAliyunDynamic, Params: map[string]string{"region": "cn-shanghai"}}}
	if _, _, err := s.PutGroup(ctx, adminCaller, "sensors", doc); err != nil {
		t.Fatal(err)
	}
	et, text := mintEnrolment(t, s, "sensors", EnrolmentTokenRequest{MaxUses: 5, TTL: time.Hour})
	e, err := s.Enrol(ctx, mustAuth(t, s, text), "s-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if reg.seen.Kind != RegistrationAliyunDynamic || reg.seen.GroupSecret != "product-secret-1" || reg.seen.DeviceID != "s-1" || reg.seen.Params["region"] != "cn-shanghai" {
		t.Errorf("registrar saw %+v", reg.seen)
	}
	stored, _ := st.GetDevice(ctx, "s-1")
	if stored.Secret != "dyn-secret-s-1" || stored.Params["deviceName"] != "s-1" || e.Device.Secret != "" {
		t.Errorf("stored %+v", stored)
	}
	c, err := s.Issue(ctx, mustAuth(t, s, e.Token.Text), "s-1", 0)
	want, _ := clouds.Registry().Sign(cloud.Request{Cloud: "aliyun", DeviceID: "s-1", Params: stored.Params, Secret: "dyn-secret-s-1", Now: now})
	if err != nil || c.Password != want.Password {
		t.Errorf("issue for a registered device: %v", err)
	}
	// An existing device is refused before the cloud is asked.
	calls := reg.calls.Load()
	if _, err := s.Enrol(ctx, mustAuth(t, s, text), "s-1", nil); code(err) != CodeConflict || reg.calls.Load() != calls {
		t.Errorf("re-enrol: %v, registrar calls %d -> %d", err, calls, reg.calls.Load())
	}
	for _, tc := range []struct {
		fail error
		want Code
	}{{ErrCloudRefused, CodeCloudRefused}, {ErrCloudUnreachable, CodeCloudUnavailable}, {ErrRegistrationInvalid, CodeConflict}} {
		reg.fail = tc.fail
		var logs bytes.Buffer
		_, err := s.Enrol(zerolog.New(&logs).WithContext(ctx), mustAuth(t, s, text), "s-2", nil)
		if code(err) != tc.want || strings.Contains(err.Error(), "product-secret-1") {
			t.Errorf("registrar failing with %v: %v, want %s", tc.fail, err, tc.want)
		}
		// The cause is logged, once, with the group and device; never the secret.
		line := ""
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "registration with the cloud failed") {
				if line != "" {
					t.Errorf("logged twice: %s", logs.String())
				}
				line = l
			}
		}
		for _, want := range []string{`"level":"warn"`, `"group":"sensors"`, `"deviceId":"s-2"`, `"registration":"aliyun-dynamic"`, "stand-in registration of s-2", tc.fail.Error()} {
			if !strings.Contains(line, want) {
				t.Errorf("registrar failing with %v: log line %q lacks %q", tc.fail, line, want)
			}
		}
		if strings.Contains(logs.String(), "product-secret-1") {
			t.Error("the product secret was logged")
		}
	}
	if got, _ := s.GetEnrolmentToken(ctx, "sensors", et.ID); got.Uses != 1 {
		t.Errorf("uses %d, want 1 (failed registrations give theirs back)", got.Uses)
	}
	// A device written without a secret is registered too.
	reg.fail = nil
	d, _, err := s.PutDevice(ctx, adminCaller, "s-3", Document{Group: "sensors"}, Precondition{})
	if err != nil || d.Params["deviceName"] != "s-3" {
		t.Fatalf("put a device of a registering group: %+v %v", d, err)
	}
	if d, _ := st.GetDevice(ctx, "s-3"); d.Secret != "dyn-secret-s-3" {
		t.Error("the registered secret was not stored")
	}
}

// TestRegistrationKindMatchesCloud: a registration kind registers devices
// of one cloud; a group of another cloud naming it is refused when written
// (422 naming registration.kind), for every pair, and one stored before
// this was checked fails its enrolments with 409 without asking the cloud.
func TestRegistrationKindMatchesCloud(t *testing.T) {
	reg := &standInRegistrar{}
	s, st := newService(t, Config{Registrar: reg})
	ctx := context.Background()
	secretFor := map[string]string{"azure": groupKey, "aliyun": "product-secret-0123456789", "tencent": "product-secret-0123456789"}
	for kind, kindCloud := range registrationClouds {
		for _, cloud := range []string{"azure", "aliyun", "tencent", "huawei"} {
			doc := GroupDocument{Cloud: cloud, Secret: secretFor[cloud], Params: map[string]any{},
				Registration: &secrets.Registration{Kind: kind, Params: map[string]string{}}}
			if doc.Secret == "" {
				doc.Secret = "huawei-secret-0123456789"
			}
			_, _, err := s.PutGroup(ctx, adminCaller, "g-"+cloud, doc)
			fields := InvalidFields(err)
			refusedKind := false
			for _, f := range fields {
				if f.Field == "registration.kind" && strings.Contains(f.Reason, kind+" registers "+kindCloud+" devices, but the group's cloud is "+cloud) {
					refusedKind = true
				}
			}
			if refusedKind != (cloud != kindCloud) {
				t.Errorf("%s group with %s: %v", cloud, kind, err)
			}
		}
	}
	// Stored directly, as by an earlier version.
	if _, err := st.PutGroup(ctx, secrets.Group{ID: "old", Cloud: "azure", Secret: groupKey,
		Registration: &secrets.Registration{Kind: RegistrationAliyunDynamic, Params: map[string]string{"productKey": "pk"}}}, -1); err != nil {
		t.Fatal(err)
	}
	_, text := mintEnrolment(t, s, "old", EnrolmentTokenRequest{MaxUses: 5, TTL: time.Hour})
	calls := reg.calls.Load()
	_, err := s.Enrol(ctx, mustAuth(t, s, text), "dev-1", nil)
	if code(err) != CodeConflict || !strings.Contains(err.Error(), "aliyun-dynamic registers aliyun devices, but the group's cloud is azure") {
		t.Errorf("enrol in a mismatched group: %v", err)
	}
	if reg.calls.Load() != calls {
		t.Error("the cloud was asked to register a device its group cannot sign for")
	}
}

// opCounter counts the store operations an enrolment makes.
type opCounter struct {
	secrets.Store
	mu  sync.Mutex
	ops map[string]int
}

func (o *opCounter) count(op string) {
	o.mu.Lock()
	o.ops[op]++
	o.mu.Unlock()
}

func (o *opCounter) take() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.ops
	o.ops = map[string]int{}
	return out
}

func (o *opCounter) GetKey(ctx context.Context, n string) ([]byte, int64, error) {
	o.count("GetKey")
	return o.Store.GetKey(ctx, n)
}

func (o *opCounter) PutKey(ctx context.Context, n string, v []byte, ifv int64) (int64, error) {
	o.count("PutKey")
	return o.Store.PutKey(ctx, n, v, ifv)
}

func (o *opCounter) GetGroup(ctx context.Context, id string) (secrets.Group, error) {
	o.count("GetGroup")
	return o.Store.GetGroup(ctx, id)
}

func (o *opCounter) GetDevice(ctx context.Context, id string) (secrets.Device, error) {
	o.count("GetDevice")
	return o.Store.GetDevice(ctx, id)
}

func (o *opCounter) PutDevice(ctx context.Context, d secrets.Device, ifv int64) (secrets.Device, error) {
	o.count("PutDevice")
	return o.Store.PutDevice(ctx, d, ifv)
}

func (o *opCounter) GetEnrolmentToken(ctx context.Context, id string) (secrets.EnrolmentToken, error) {
	o.count("GetEnrolmentToken")
	return o.Store.GetEnrolmentToken(ctx, id)
}

func (o *opCounter) PutEnrolmentToken(ctx context.Context, t secrets.EnrolmentToken, ifv int64) (int64, error) {
	o.count("PutEnrolmentToken")
	return o.Store.PutEnrolmentToken(ctx, t, ifv)
}

func (o *opCounter) PutToken(ctx context.Context, tk secrets.Token) error {
	o.count("PutToken")
	return o.Store.PutToken(ctx, tk)
}

func (o *opCounter) TokenByHash(ctx context.Context, h string) (secrets.Token, error) {
	o.count("TokenByHash")
	return o.Store.TokenByHash(ctx, h)
}

// TestEnrolStoreCost pins what docs/enrolment.md says an enrolment costs:
// one read (the enrolment token, by Authenticate), one group read when the
// group is not cached, and three writes (the use, the device, its token).
func TestEnrolStoreCost(t *testing.T) {
	s0, st := newService(t, Config{})
	ctx := context.Background()
	putLamps(t, s0)
	_, text := mintEnrolment(t, s0, "lamps", EnrolmentTokenRequest{MaxUses: 10, TTL: time.Hour})
	if _, err := s0.Enrol(ctx, mustAuth(t, s0, text), "warm-up", nil); err != nil { // creates the device-token MAC key
		t.Fatal(err)
	}
	oc := &opCounter{Store: st.Store, ops: map[string]int{}}
	s, err := New(Config{Store: oc, AdminToken: admin})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []map[string]int{
		// cold: the MAC key once per replica, the group once per cache TTL
		{"GetKey": 1, "GetEnrolmentToken": 1, "GetGroup": 1, "PutEnrolmentToken": 1, "PutDevice": 1, "PutToken": 1},
		{"GetEnrolmentToken": 1, "PutEnrolmentToken": 1, "PutDevice": 1, "PutToken": 1},
	} {
		p := mustAuth(t, s, text)
		if _, err := s.Enrol(ctx, p, fmt.Sprintf("cost-%d", i), nil); err != nil {
			t.Fatal(err)
		}
		if got := oc.take(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("enrolment %d: store operations %v, want %v", i, got, want)
		}
	}
}

// FuzzEnrolmentToken: whatever text a caller sends as an enrolment token,
// Authenticate neither panics nor accepts anything but the minted text,
// and its answer never quotes the text.
func FuzzEnrolmentToken(f *testing.F) {
	s, _ := newService(f, Config{})
	ctx := context.Background()
	putLamps(f, s)
	et, text, err := s.CreateEnrolmentToken(ctx, adminCaller, "lamps", EnrolmentTokenRequest{MaxUses: 1, TTL: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{text, text + "0", PrefixEnrolment, PrefixEnrolment + et.ID, PrefixEnrolment + et.ID + ".",
		PrefixEnrolment + "." + strings.Repeat("a", 64), PrefixEnrolment + et.ID + "..x", PrefixEnrolment + "ZZ.x", PrefixEnrolment + "../../keys/x.y"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := s.Authenticate(ctx, "Bearer "+tok)
		if err == nil {
			if tok != text || p.Role != RoleEnrolment || p.TokenID != et.ID {
				t.Fatalf("accepted %q as %+v", tok, p)
			}
			return
		}
		if len(tok) > 8 && strings.Contains(err.Error(), tok) {
			t.Fatalf("the error quotes the token: %v", err)
		}
	})
}
