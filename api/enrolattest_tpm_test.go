package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/rs/zerolog"

	"github.com/credsign/credsign/agent/client"
	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/internal/testing/swtpmtest"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/service"
	"github.com/credsign/credsign/service/tpmattest"
)

// TestEnrolAttestTPM runs TPM attestation over HTTP with a manufactured
// swtpm: the wire format of POST /v1/enrol/attest carries the EK
// certificate, the AK and the credential intact, and the body's
// `attestation` (TpmAttestation, as a device sends it to POST /v1/enrol)
// with the jwk of a DPoP proof signed in the TPM passes the enrol check;
// the same attestation with a proof signed by another key does not.
func TestEnrolAttestTPM(t *testing.T) {
	ca := swtpmtest.NewCA(t)
	dev := swtpmtest.NewDevice(t, ca)
	key, att := dev.Key, dev.Att

	fs, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	v, err := tpmattest.New(tpmattest.Config{CAs: ca.PEM})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{Store: fs, AdminToken: testAdmin, TPMAttestation: v})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(svc, Config{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	e := &env{t: t, url: ts.URL, router: testRouter(t), bodies: &testutil.SyncBuffer{}}
	mustStatus(t, e.do("PUT", "/v1/groups/grp", testAdmin, map[string]any{"cloud": "azure", "secret": groupDoc()["secret"], "params": groupDoc()["params"], "requireAttestation": "tpm"}), 201, "group")
	r := e.do("POST", "/v1/groups/grp/enrolment-tokens", testAdmin, map[string]any{"maxUses": 5, "ttlSeconds": 600})
	var et struct{ Token string }
	r.json(t, &et)
	ctx := context.Background()
	caller, err := srv.svc.Authenticate(ctx, "Bearer "+et.Token)
	if err != nil {
		t.Fatal(err)
	}

	// The device, over HTTP with the agent's client (tpmkey.Attest): its
	// EK certificate and AK, then the answer.
	c, err := client.NewClientWithResponses(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) client.RequestEditorFn {
		return func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+tok)
			return nil
		}
	}
	attest := func(t *testing.T) map[string]any {
		t.Helper()
		a, err := att.Attest(ctx, c, bearer(et.Token), "lamp-1", key)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Run("a refusal names the status and the detail", func(t *testing.T) {
		_, err := att.Attest(ctx, c, bearer(et.Token), "../nope", key)
		if err == nil || !strings.Contains(err.Error(), "422") {
			t.Fatalf("Attest = %v", err)
		}
	})
	// The server's side of POST /v1/enrol: the body's attestation as the
	// generated type, and the jwk of the DPoP proof.
	check := func(t *testing.T, body map[string]any, proof string) error {
		t.Helper()
		raw, err := json.Marshal(map[string]any{"deviceId": "lamp-1", "attestation": body})
		if err != nil {
			t.Fatal(err)
		}
		var req oapi.EnrolRequest
		if err := json.Unmarshal(raw, &req); err != nil || req.Attestation == nil {
			t.Fatalf("enrol body: %v", err)
		}
		jws, err := jose.ParseSigned(proof, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		jwk := jws.Signatures[0].Protected.JSONWebKey
		if _, err := jws.Verify(jwk); err != nil {
			t.Fatalf("proof: %v", err)
		}
		a := req.Attestation
		return srv.svc.VerifyEnrolAttestation(ctx, caller, req.DeviceId, tpmattest.Attestation{
			ChallengeID: a.ChallengeId, ActivatedSecret: a.ActivatedSecret,
			KeyPublic: a.KeyCertify.Public, Attest: a.KeyCertify.Attest, Signature: a.KeyCertify.Signature,
		}, jwk.Key)
	}
	proofBy := func(t *testing.T, s crypto.Signer) string {
		t.Helper()
		claims := fmt.Sprintf(`{"jti":%q,"htm":"POST","htu":%q,"iat":%d}`, base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef")), ts.URL+"/v1/enrol", time.Now().Unix())
		return testutil.ES256Signer{Signer: s}.Proof(t, claims)
	}

	t.Run("a proof signed in the TPM passes", func(t *testing.T) {
		if err := check(t, attest(t), proofBy(t, key)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a proof signed by a file key fails", func(t *testing.T) {
		fileKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		err = check(t, attest(t), proofBy(t, fileKey))
		if err == nil || !strings.Contains(err.Error(), "not the key of the enrolment's proof") {
			t.Fatalf("check = %v", err)
		}
	})
	t.Run("the group refuses an enrolment without attestation", func(t *testing.T) {
		mustStatus(t, e.do("POST", "/v1/enrol", et.Token, map[string]any{"deviceId": "lamp-1"}), 403, "enrol without attestation")
	})
}
