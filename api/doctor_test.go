package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// triple is what the doctor diagnoses of issued credentials.
type triple struct {
	ClientID, Username, Password string
	IssuedAt                     time.Time
}

// issueTriple issues credentials for device id as the provisioner.
func (f *fixture) issueTriple(t *testing.T, id string) triple {
	t.Helper()
	r := f.do("POST", "/v1/devices/"+id+"/credentials", f.prov, nil)
	mustStatus(t, r, 200, "issue")
	var c triple
	r.json(t, &c)
	return c
}

// TestDoctorAPI diagnoses triples through POST /v1/devices/{id}/doctor:
// one the server itself issued (it matches), one made with the classic
// Huawei mistake of keying the HMAC by the secret (computed here from
// docs/clouds.md with the standard library), a device the doctor does not
// cover, an unknown device and bad bodies; the password sent and the
// secret never appear in a response or a log line.
func TestDoctorAPI(t *testing.T) {
	f := newFixture(t)
	c := f.issueTriple(t, "huawei-1")

	type diagnosis struct {
		Cloud    string
		Match    bool
		Findings []struct{ Part, Status, Cause, Confidence string }
	}
	r := f.do("POST", "/v1/devices/huawei-1/doctor", f.prov, map[string]any{"clientId": c.ClientID, "username": c.Username, "password": c.Password, "connack": 0, "at": c.IssuedAt})
	mustStatus(t, r, 200, "doctor of a correct triple")
	var dg diagnosis
	r.json(t, &dg)
	if !dg.Match || dg.Cloud != "huawei" || len(dg.Findings) != 4 || dg.Findings[2].Part != "password" || dg.Findings[2].Status != "match" {
		t.Errorf("correct triple: %s", r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", r.header.Get("Cache-Control"))
	}

	// The classic mistake: HMAC keyed by the secret over the hour.
	hour := c.ClientID[len(c.ClientID)-10:]
	m := hmac.New(sha256.New, []byte("huawei-secret-5b8e2d"))
	m.Write([]byte(hour))
	swapped := hex.EncodeToString(m.Sum(nil))
	r = f.do("POST", "/v1/devices/huawei-1/doctor", testAdmin, map[string]any{"clientId": c.ClientID, "username": c.Username, "password": swapped, "connack": 134, "at": c.IssuedAt})
	mustStatus(t, r, 200, "doctor of a swapped triple")
	dg = diagnosis{}
	r.json(t, &dg)
	if dg.Match || dg.Findings[2].Status != "differs" || !strings.Contains(dg.Findings[2].Cause, "key and message swapped") || dg.Findings[2].Confidence != "certain" {
		t.Errorf("swapped: %s", r.body)
	}

	// A cloud the doctor does not cover, an unknown device, bad bodies.
	mustStatus(t, f.do("PUT", "/v1/devices/tuya-1", f.prov, map[string]any{"cloud": "tuya", "params": map[string]any{"deviceId": "d"}, "secret": "tuya-secret-0001"}), 201, "put tuya")
	r = f.do("POST", "/v1/devices/tuya-1/doctor", f.prov, map[string]any{"clientId": "c", "username": "u", "password": "p"})
	mustStatus(t, r, 422, "tuya")
	if p := r.problem(t); !strings.Contains(string(r.body), "does not diagnose tuya") {
		t.Errorf("tuya: %v", p)
	}
	mustStatus(t, f.do("POST", "/v1/devices/nope-1/doctor", f.prov, map[string]any{"clientId": "c", "username": "u", "password": "p"}), 404, "unknown device")
	for _, body := range []any{
		map[string]any{"clientId": "c", "username": "u"},
		map[string]any{"clientId": "c", "username": "u", "password": "p", "connack": 256},
		map[string]any{"clientId": "c", "username": "u", "password": "p", "at": "yesterday"},
		map[string]any{"clientId": "c", "username": "u", "password": "p", "secret": "x"},
	} {
		r := f.do("POST", "/v1/devices/huawei-1/doctor", f.prov, body)
		mustStatus(t, r, 422, "bad body")
		r.problem(t)
	}
	mustStatus(t, f.do("POST", "/v1/devices/huawei-1/doctor", f.prov, nil), 422, "no body")

	logs := f.logs.String()
	if !strings.Contains(logs, `"event":"device.doctor"`) || !strings.Contains(logs, `"differs":["password"]`) {
		t.Errorf("no device.doctor audit event naming the part that differs:\n%s", logs)
	}
	for _, s := range append([]string{c.Password, swapped, "tuya-secret-0001"}, f.secrets...) {
		if strings.Contains(logs, s) || strings.Contains(f.bodies.String(), s) && s != c.Password {
			t.Errorf("a secret value appears in a log line or a response")
		}
	}
}

// TestDoctorGroupDevice: a device without a secret of its own, whose key
// is derived from its azure group's key, is diagnosed with that key as it
// is issued credentials with it: its own triple matches, one signed with a
// key derived from another group differs; once the group is gone, 409 as
// for issuing. The group key appears in no answer and no log line.
func TestDoctorGroupDevice(t *testing.T) {
	f := newFixture(t)
	mustStatus(t, f.do("PUT", "/v1/groups/lamps", testAdmin, groupDoc()), 201, "put group")
	mustStatus(t, f.do("PUT", "/v1/devices/lamp-7", f.prov, map[string]any{"group": "lamps"}), 201, "put group device")
	c := f.issueTriple(t, "lamp-7")
	var dg struct {
		Match    bool
		Findings []struct{ Part, Status, Cause string }
	}
	r := f.do("POST", "/v1/devices/lamp-7/doctor", f.prov, map[string]any{"clientId": c.ClientID, "username": c.Username, "password": c.Password, "at": c.IssuedAt})
	mustStatus(t, r, 200, "doctor of a group device")
	r.json(t, &dg)
	if !dg.Match {
		t.Errorf("the device's own triple does not match: %s", r.body)
	}
	// The same device's triple with a password signed by another group's key
	// (for its own device: a group derives keys from {deviceId}).
	mustStatus(t, f.do("PUT", "/v1/groups/other", testAdmin, map[string]any{"cloud": "azure", "secret": "b3RoZXIgZ3JvdXAga2V5IG9mIDMyIGJ5dGVzIGxvbmchIQ==",
		"params": map[string]any{"hubHost": "lamps.azure-devices.net", "deviceId": "{deviceId}"}}), 201, "put other group")
	mustStatus(t, f.do("PUT", "/v1/devices/lamp-7-other", f.prov, map[string]any{"group": "other"}), 201, "put other device")
	r = f.do("POST", "/v1/devices/lamp-7-other/credentials", f.prov, nil)
	mustStatus(t, r, 200, "issue other")
	var o struct{ Password string }
	r.json(t, &o)
	r = f.do("POST", "/v1/devices/lamp-7/doctor", f.prov, map[string]any{"clientId": c.ClientID, "username": c.Username, "password": o.Password, "at": c.IssuedAt})
	mustStatus(t, r, 200, "doctor of a wrong key")
	dg.Match = false
	r.json(t, &dg)
	if dg.Match || !strings.Contains(string(r.body), `"part":"password","status":"differs"`) {
		t.Errorf("a key of another group: %s", r.body)
	}
	mustStatus(t, f.do("DELETE", "/v1/groups/lamps", testAdmin, nil), 204, "delete group")
	r = f.do("POST", "/v1/devices/lamp-7/doctor", f.prov, map[string]any{"clientId": c.ClientID, "username": c.Username, "password": c.Password})
	mustStatus(t, r, 409, "doctor of a device whose group is gone")
	r.problem(t)
	if strings.Contains(f.bodies.String()+f.logs.String(), testGroupKey) {
		t.Error("the group key was answered or logged")
	}
}
