package api

import (
	"strings"
	"sync"
	"testing"

	"github.com/credsign/credsign/agent/tpmkey"
	"github.com/credsign/credsign/internal/testing/swtpmtest"
	"github.com/credsign/credsign/service/tpmattest"
)

var (
	softTPMOnce sync.Once
	softTPM     *swtpmtest.Software
)

// software is one software EK and AK for the package's tests (an RSA key
// takes a while to make).
func software(t *testing.T) *swtpmtest.Software {
	softTPMOnce.Do(func() { softTPM = swtpmtest.NewSoftware(t) })
	return softTPM
}

// withTPM configures a server that trusts software(t)'s EK CA.
func withTPM(t *testing.T) func(*envConfig) {
	return func(c *envConfig) {
		v, err := tpmattest.New(tpmattest.Config{CAs: software(t).CAPEM})
		if err != nil {
			t.Fatal(err)
		}
		c.TPMAttestation = v
	}
}

func attestBody(t *testing.T, id string) map[string]any {
	sw := software(t)
	return map[string]any{"deviceId": id, "ek": map[string]any{"cert": sw.EKCert}, "ak": map[string]any{"public": sw.AKPublic}}
}

func TestEnrolAttest(t *testing.T) {
	f := newFixture(t)
	r := f.do("POST", "/v1/enrol/attest", f.enrol, attestBody(t, "lamp-9"))
	mustStatus(t, r, 200, "attest")
	var c struct {
		ChallengeID string `json:"challengeId"`
		Credential  struct{ CredentialBlob, Secret []byte }
	}
	r.json(t, &c)
	if c.ChallengeID == "" || len(c.Credential.CredentialBlob) == 0 || len(c.Credential.Secret) != 256 {
		t.Fatalf("challenge %+v", c)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("the challenge may be stored")
	}

	other := swtpmtest.NewSoftware(t)
	ak := software(t).AKPublic
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		detail string
	}{
		{"EK certificate of another CA", map[string]any{"deviceId": "lamp-9", "ek": map[string]any{"cert": other.EKCert}, "ak": map[string]any{"public": ak}}, 403, "does not verify against the TPM EK CAs"},
		{"not a certificate", map[string]any{"deviceId": "lamp-9", "ek": map[string]any{"cert": []byte("nope")}, "ak": map[string]any{"public": ak}}, 422, "DER X.509"},
		{"AK not restricted", map[string]any{"deviceId": "lamp-9", "ek": map[string]any{"cert": software(t).EKCert}, "ak": map[string]any{"public": swtpmtest.PublicArea(t, &other.AK.PublicKey, tpmkey.KeyTemplate.ObjectAttributes)}}, 403, "restricted"},
		{"no ak", map[string]any{"deviceId": "lamp-9", "ek": map[string]any{"cert": software(t).EKCert}}, 422, ""},
		{"bad device id", map[string]any{"deviceId": "../x", "ek": map[string]any{"cert": software(t).EKCert}, "ak": map[string]any{"public": ak}}, 422, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do("POST", "/v1/enrol/attest", f.enrol, tc.body)
			mustStatus(t, r, tc.status, tc.name)
			if p := r.problem(t); !strings.Contains(string(r.body), tc.detail) {
				t.Errorf("problem %v, want %q in it", p, tc.detail)
			}
		})
	}

	t.Run("a server without EK CAs refuses", func(t *testing.T) {
		e := &fixture{env: newEnv(t, nil)}
		mustStatus(t, e.do("PUT", "/v1/groups/grp", testAdmin, groupDoc()), 201, "group")
		r := e.do("POST", "/v1/groups/grp/enrolment-tokens", testAdmin, map[string]any{"maxUses": 1, "ttlSeconds": 60})
		mustStatus(t, r, 201, "mint")
		var et struct{ Token string }
		r.json(t, &et)
		r = e.do("POST", "/v1/enrol/attest", et.Token, attestBody(t, "lamp-9"))
		mustStatus(t, r, 403, "no EK CAs")
		if !strings.Contains(string(r.body), "--tpm-ek-ca") {
			t.Errorf("problem %s does not say how to turn it on", r.body)
		}
	})
}

func TestGroupRequireAttestation(t *testing.T) {
	e := &fixture{env: newEnv(t, nil)}
	doc := groupDoc()
	doc["requireAttestation"] = "tpm"
	mustStatus(t, e.do("PUT", "/v1/groups/grp", testAdmin, doc), 201, "group requiring TPM attestation")
	var g map[string]any
	e.do("GET", "/v1/groups/grp", testAdmin, nil).json(t, &g)
	if g["requireAttestation"] != "tpm" {
		t.Fatalf("group %v", g)
	}
	r := e.do("POST", "/v1/groups/grp/enrolment-tokens", testAdmin, map[string]any{"maxUses": 1, "ttlSeconds": 60})
	var et struct{ Token string }
	r.json(t, &et)
	r = e.do("POST", "/v1/enrol", et.Token, map[string]any{"deviceId": "lamp-1"})
	mustStatus(t, r, 403, "enrol without attestation")
	mustStatus(t, e.do("GET", "/v1/devices/lamp-1", testAdmin, nil), 404, "device of a refused enrolment")
	doc["requireAttestation"] = "sometimes"
	mustStatus(t, e.do("PUT", "/v1/groups/grp", testAdmin, doc), 422, "unknown requireAttestation")
}
