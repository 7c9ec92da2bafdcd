package tpmattest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/credsign/credsign/internal/testing/swtpmtest"
)

// FuzzCheckCertification feeds arbitrary key public areas, attestations
// and signatures to the certification check (what VerifyAttestation does
// once the secret matched): never a panic, and a pass only for a
// certification that the AK signed, of the proof's key, for the challenge.
func FuzzCheckCertification(f *testing.F) {
	ak, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	dev, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	pub := swtpmtest.PublicArea(f, &dev.PublicKey, tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, SignEncrypt: true})
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](pub[2:])
	if err != nil {
		f.Fatal(err)
	}
	name, err := tpm2.ObjectName(p)
	if err != nil {
		f.Fatal(err)
	}
	// A certification as a TPM would make it, signed by the AK in software.
	attest := tpm2.Marshal(tpm2.TPMSAttest{
		Magic: tpm2.TPMGeneratedValue, Type: tpm2.TPMSTAttestCertify,
		ExtraData: tpm2.TPM2BData{Buffer: []byte("ch1")},
		Attested:  tpm2.NewTPMUAttest(tpm2.TPMSTAttestCertify, &tpm2.TPMSCertifyInfo{Name: *name, QualifiedName: *name}),
	})
	h := sha256.Sum256(attest)
	r, s, err := ecdsa.Sign(rand.Reader, ak, h[:])
	if err != nil {
		f.Fatal(err)
	}
	sig := tpm2.Marshal(tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
		Hash: tpm2.TPMAlgSHA256, SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()}, SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()},
	})})
	good := Attestation{ChallengeID: "ch1", KeyPublic: pub, Attest: attest, Signature: sig}
	if err := checkCertification(&ak.PublicKey, good, &dev.PublicKey); err != nil {
		f.Fatalf("a good certification: %v", err)
	}
	f.Add(pub, attest, sig)
	f.Add(pub[:10], attest[:10], sig[:10])
	f.Fuzz(func(t *testing.T, pub, attest, sig []byte) {
		a := Attestation{ChallengeID: "ch1", KeyPublic: pub, Attest: attest, Signature: sig}
		if err := checkCertification(&ak.PublicKey, a, &dev.PublicKey); err == nil {
			if string(attest) != string(good.Attest) || string(pub) != string(good.KeyPublic) {
				t.Fatalf("passed a certification the AK did not sign for this key")
			}
		}
	})
}
