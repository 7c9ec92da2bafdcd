package tpmattest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/credsign/credsign/agent/tpmkey"
	"github.com/credsign/credsign/internal/testing/swtpmtest"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/service/tpmattest"
)

// device is a manufactured swtpm with its device key and attestor.
type device struct{ *swtpmtest.Device }

func newDevice(t *testing.T, ca *swtpmtest.CA) *device {
	return &device{swtpmtest.NewDevice(t, ca)}
}

var bind = tpmattest.Binding{Group: "lamps", DeviceID: "lamp-1", TokenID: "tok1"}

// answer is what an honest device sends for challenge c.
func (d *device) answer(t *testing.T, c tpmattest.Challenge) tpmattest.Attestation {
	t.Helper()
	secret, cert := d.Answer(t, c.ID, c.CredentialBlob, c.Secret)
	return tpmattest.Attestation{ChallengeID: c.ID, ActivatedSecret: secret, KeyPublic: cert.Public, Attest: cert.Attest, Signature: cert.Signature}
}

// loadExternal loads a software key into the TPM (TPM2_LoadExternal):
// the TPM can use it, and its AK can certify it, but it was not made there.
func loadExternal(t *testing.T, tpm transport.TPM, k *ecdsa.PrivateKey) tpm2.AuthHandle {
	t.Helper()
	tmpl := tpmkey.KeyTemplate
	tmpl.ObjectAttributes = tpm2.TPMAObject{UserWithAuth: true, NoDA: true, SignEncrypt: true}
	x, y := point(t, &k.PublicKey)
	tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: x}, Y: tpm2.TPM2BECCParameter{Buffer: y}})
	rsp, err := tpm2.LoadExternal{
		InPrivate: tpm2.New2B(tpm2.TPMTSensitive{
			SensitiveType: tpm2.TPMAlgECC,
			Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgECC, &tpm2.TPM2BECCParameter{Buffer: testutil.PrivateBytes(t, k)}),
		}),
		InPublic:  tpm2.New2B(tmpl),
		Hierarchy: tpm2.TPMRHNull,
	}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(tpm) })
	return tpm2.AuthHandle{Handle: rsp.ObjectHandle, Name: rsp.Name, Auth: tpm2.PasswordAuth(nil)}
}

func TestAttestation(t *testing.T) {
	ca := swtpmtest.NewCA(t)
	dev := newDevice(t, ca)
	v, err := tpmattest.New(tpmattest.Config{CAs: ca.PEM})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := tpmattest.Request{EKCert: dev.Att.EKCert(), AKPublic: dev.Att.AKPublic()}
	challenge := func(t *testing.T) tpmattest.Challenge {
		t.Helper()
		c, err := v.Challenge(ctx, bind, req)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// A genuine TPM from another maker (another CA).
	thiefCA := swtpmtest.NewCA(t)
	thief := newDevice(t, thiefCA)
	fileKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		// attest answers the challenge and returns the proof's key.
		attest  func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any)
		wantErr error
		reason  string
	}{
		{"the key in the TPM passes", func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any) {
			return bind, dev.answer(t, c), dev.Key.Public()
		}, nil, ""},
		{"a file key with an honest AK fails", func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any) {
			return bind, dev.answer(t, c), &fileKey.PublicKey
		}, tpmattest.ErrRefused, "not the key of the enrolment's proof"},
		{"a file key loaded into the TPM and certified fails", func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any) {
			a := dev.answer(t, c)
			h := loadExternal(t, dev.TPM, fileKey)
			rsp, err := tpm2.Certify{ObjectHandle: h, SignHandle: tpm2.AuthHandle{Handle: dev.Att.AK().Handle, Name: dev.Att.AK().Name, Auth: tpm2.PasswordAuth(nil)}, QualifyingData: tpm2.TPM2BData{Buffer: []byte(c.ID)}, InScheme: tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull}}.Execute(dev.TPM)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := tpm2.ReadPublic{ObjectHandle: h.Handle}.Execute(dev.TPM)
			if err != nil {
				t.Fatal(err)
			}
			a.KeyPublic, a.Attest, a.Signature = tpm2.Marshal(pub.OutPublic), rsp.CertifyInfo.Bytes(), tpm2.Marshal(rsp.Signature)
			return bind, a, &fileKey.PublicKey
		}, tpmattest.ErrRefused, "may leave its TPM"},
		{"a public area that claims fixedTPM for a file key fails", func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any) {
			a := dev.answer(t, c)
			tmpl := tpmkey.KeyTemplate
			x, y := point(t, &fileKey.PublicKey)
			tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: x}, Y: tpm2.TPM2BECCParameter{Buffer: y}})
			a.KeyPublic = tpm2.Marshal(tpm2.New2B(tmpl))
			return bind, a, &fileKey.PublicKey
		}, tpmattest.ErrRefused, "not the key the AK certified"},
		{"a wrong activated secret fails", func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any) {
			a := dev.answer(t, c)
			a.ActivatedSecret[0] ^= 1
			return bind, a, dev.Key.Public()
		}, tpmattest.ErrRefused, "activated secret is wrong"},
		{"a certification for another challenge fails", func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any) {
			a := dev.answer(t, c)
			cert, err := dev.Att.Certify(dev.Key, []byte("another-challenge"))
			if err != nil {
				t.Fatal(err)
			}
			a.Attest, a.Signature = cert.Attest, cert.Signature
			return bind, a, dev.Key.Public()
		}, tpmattest.ErrRefused, "not made for this challenge"},
		{"an attestation altered after signing fails", func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any) {
			a := dev.answer(t, c)
			a.Attest[len(a.Attest)-1] ^= 1
			return bind, a, dev.Key.Public()
		}, tpmattest.ErrRefused, "does not verify with the AK"},
		{"another device's answer fails", func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any) {
			b := bind
			b.DeviceID = "lamp-2"
			return b, dev.answer(t, c), dev.Key.Public()
		}, tpmattest.ErrRefused, "another device"},
		{"a malformed signature fails", func(t *testing.T, c tpmattest.Challenge) (tpmattest.Binding, tpmattest.Attestation, any) {
			a := dev.answer(t, c)
			a.Signature = a.Signature[:5]
			return bind, a, dev.Key.Public()
		}, tpmattest.ErrMalformed, "TPMT_SIGNATURE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := challenge(t)
			b, a, key := tc.attest(t, c)
			err := v.VerifyAttestation(ctx, b, a, key)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("VerifyAttestation: %v", err)
				}
			} else if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("VerifyAttestation = %v, want %v (%s)", err, tc.wantErr, tc.reason)
			}
			// A challenge is answered once, whatever the outcome.
			if err := v.VerifyAttestation(ctx, bind, dev.answerNoActivate(t, c), dev.Key.Public()); !errors.Is(err, tpmattest.ErrRefused) {
				t.Fatalf("second answer to one challenge: %v", err)
			}
		})
	}

	t.Run("an EK certificate from another CA fails", func(t *testing.T) {
		other, err := tpmattest.New(tpmattest.Config{CAs: thiefCA.PEM})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Challenge(ctx, bind, req); !errors.Is(err, tpmattest.ErrRefused) || !strings.Contains(err.Error(), "does not verify against the TPM EK CAs") {
			t.Fatalf("Challenge = %v", err)
		}
	})

	t.Run("an AK that is not restricted fails", func(t *testing.T) {
		r := req
		r.AKPublic = dev.Key.PublicArea()
		if _, err := v.Challenge(ctx, bind, r); !errors.Is(err, tpmattest.ErrRefused) || !strings.Contains(err.Error(), "restricted") {
			t.Fatalf("Challenge = %v", err)
		}
	})

	t.Run("an expired challenge fails", func(t *testing.T) {
		now := time.Now()
		short, err := tpmattest.New(tpmattest.Config{CAs: ca.PEM, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		c, err := short.Challenge(ctx, bind, req)
		if err != nil {
			t.Fatal(err)
		}
		a := dev.answer(t, c)
		now = now.Add(tpmattest.DefaultTTL)
		if err := short.VerifyAttestation(ctx, bind, a, dev.Key.Public()); !errors.Is(err, tpmattest.ErrRefused) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("VerifyAttestation = %v", err)
		}
	})

	t.Run("another TPM's EK certificate cannot be activated", func(t *testing.T) {
		// The EK certificate of a genuine TPM, with the AK of the TPM
		// that answers: the credential opens only in the first.
		c, err := v.Challenge(ctx, bind, tpmattest.Request{EKCert: dev.Att.EKCert(), AKPublic: thief.Att.AKPublic()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := thief.Att.Activate(c.CredentialBlob, c.Secret); err == nil {
			t.Fatal("a TPM activated a credential made for another TPM's EK")
		}
	})

	t.Run("malformed requests", func(t *testing.T) {
		for _, r := range []tpmattest.Request{
			{},
			{EKCert: []byte("not a certificate"), AKPublic: req.AKPublic},
			{EKCert: req.EKCert, AKPublic: []byte{0, 9, 1}},
			{EKCert: req.EKCert, AKPublic: append(append([]byte{}, req.AKPublic...), 0)},
		} {
			if _, err := v.Challenge(ctx, bind, r); !errors.Is(err, tpmattest.ErrMalformed) {
				t.Errorf("Challenge(%x…) = %v, want ErrMalformed", r.AKPublic[:min(4, len(r.AKPublic))], err)
			}
		}
	})
}

// answerNoActivate is an answer without activation (a replay of a used
// challenge needs none).
func (d *device) answerNoActivate(t *testing.T, c tpmattest.Challenge) tpmattest.Attestation {
	t.Helper()
	cert := d.Certify(t, c.ID)
	return tpmattest.Attestation{ChallengeID: c.ID, ActivatedSecret: make([]byte, 32), KeyPublic: cert.Public, Attest: cert.Attest, Signature: cert.Signature}
}

func point(t *testing.T, k *ecdsa.PublicKey) (x, y []byte) {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b[1:33], b[33:]
}
