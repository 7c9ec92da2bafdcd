package tpmkey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/credsign/credsign/agent/client"
)

// NVIndexRSAEKCert is where a TPM keeps the certificate of its RSA 2048
// endorsement key (TCG EK Credential Profile, the low range).
const NVIndexRSAEKCert = tpm2.TPMHandle(0x01c00002)

// AKTemplate is the attestation key's template: a restricted ECDSA P-256
// signing key made in the TPM and bound to it. Restricted, it signs only
// what the TPM itself produced and vouches for (TPM2_Certify's attestation
// structures), never an outside digest that could pass for one.
var AKTemplate = p256Template(true)

// Attestor is the device's half of TPM attestation: the TPM's endorsement
// key (EK) certificate, and a fresh attestation key (AK) that the server
// names in a credential only the EK can open (credential activation) and
// that certifies the device key. Close flushes the AK.
type Attestor struct {
	t        transport.TPM
	ak       tpm2.NamedHandle
	ekCert   []byte
	akPublic []byte
}

// NewAttestor reads the EK certificate and creates an AK under the storage
// root key. The TPM needs room for three loaded objects (the device key,
// the AK and, while Activate runs, the EK), which every TPM 2.0 has.
func NewAttestor(t transport.TPM) (*Attestor, error) {
	cert, err := readNV(t, NVIndexRSAEKCert)
	if err != nil {
		return nil, fmt.Errorf("tpm: EK certificate (NV index %#x): %w", uint32(NVIndexRSAEKCert), err)
	}
	a := &Attestor{t: t, ekCert: cert}
	parent, err := srk(t)
	if err != nil {
		return nil, err
	}
	rsp, err := tpm2.Create{ParentHandle: parent, InPublic: tpm2.New2B(AKTemplate)}.Execute(t)
	if err != nil {
		flush(t, parent.Handle)
		return nil, fmt.Errorf("tpm: create the attestation key: %w", err)
	}
	ld, err := tpm2.Load{ParentHandle: parent, InPrivate: rsp.OutPrivate, InPublic: rsp.OutPublic}.Execute(t)
	flush(t, parent.Handle)
	if err != nil {
		return nil, fmt.Errorf("tpm: load the attestation key: %w", err)
	}
	a.ak = tpm2.NamedHandle{Handle: ld.ObjectHandle, Name: ld.Name}
	a.akPublic = tpm2.Marshal(rsp.OutPublic)
	return a, nil
}

// readNV reads a whole NV index, in pieces the TPM accepts.
func readNV(t transport.TPM, index tpm2.TPMHandle) ([]byte, error) {
	pub, err := tpm2.NVReadPublic{NVIndex: index}.Execute(t)
	if err != nil {
		return nil, err
	}
	p, err := pub.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	const chunk = 512 // below every TPM's MAX_NV_BUFFER_SIZE
	out := make([]byte, 0, p.DataSize)
	for off := 0; off < int(p.DataSize); off += chunk {
		n := min(chunk, int(p.DataSize)-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: index, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: pub.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}.Execute(t)
		if err != nil {
			return nil, err
		}
		out = append(out, rsp.Data.Buffer...)
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	return out, nil
}

// EKCert is the EK certificate (DER) as the TPM's maker wrote it.
func (a *Attestor) EKCert() []byte { return a.ekCert }

// AKPublic is the AK's public area (TPM2B_PUBLIC).
func (a *Attestor) AKPublic() []byte { return a.akPublic }

// AK is the AK's handle in the TPM, to certify other objects with.
func (a *Attestor) AK() tpm2.NamedHandle { return a.ak }

// Activate opens the server's credential (TPM2_ActivateCredential): the
// TPM decrypts it with the EK only if the AK it names is loaded in the same
// TPM, and returns the secret inside. The EK is re-created from the TCG's
// RSA 2048 template (the key the EK certificate is for) for the call.
func (a *Attestor) Activate(credentialBlob, secret []byte) ([]byte, error) {
	ek, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tpm2.RSAEKTemplate)}.Execute(a.t)
	if err != nil {
		return nil, fmt.Errorf("tpm: endorsement key: %w", err)
	}
	defer flush(a.t, ek.ObjectHandle)
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: a.ak.Handle, Name: a.ak.Name, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle:      tpm2.AuthHandle{Handle: ek.ObjectHandle, Name: ek.Name, Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, ekPolicy)},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: credentialBlob},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: secret},
	}.Execute(a.t)
	if err != nil {
		return nil, fmt.Errorf("tpm: activate the credential: %w", err)
	}
	return rsp.CertInfo.Buffer, nil
}

// ekPolicy satisfies the TCG EK's policy: PolicySecret(TPM_RH_ENDORSEMENT).
func ekPolicy(t transport.TPM, handle tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
	_, err := tpm2.PolicySecret{AuthHandle: tpm2.TPMRHEndorsement, PolicySession: handle, NonceTPM: nonceTPM}.Execute(t)
	return err
}

// Certification is the AK's certification of the device key
// (TPM2_Certify).
type Certification struct {
	// Public is the device key's TPM2B_PUBLIC.
	Public []byte
	// Attest is the TPMS_ATTEST the AK signed.
	Attest []byte
	// Signature is the AK's TPMT_SIGNATURE over Attest.
	Signature []byte
}

// Certify has the AK certify that key is loaded in this TPM, with
// qualifyingData (the server's challenge ID) in the signed structure.
func (a *Attestor) Certify(key *Key, qualifyingData []byte) (Certification, error) {
	key.mu.Lock()
	defer key.mu.Unlock()
	rsp, err := tpm2.Certify{
		ObjectHandle:   tpm2.AuthHandle{Handle: key.handle, Name: key.name, Auth: tpm2.PasswordAuth(nil)},
		SignHandle:     tpm2.AuthHandle{Handle: a.ak.Handle, Name: a.ak.Name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: qualifyingData},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
	}.Execute(a.t)
	if err != nil {
		return Certification{}, fmt.Errorf("tpm: certify the key: %w", err)
	}
	return Certification{Public: key.public, Attest: rsp.CertifyInfo.Bytes(), Signature: tpm2.Marshal(rsp.Signature)}, nil
}

// Close flushes the AK from the TPM.
func (a *Attestor) Close() error {
	if _, err := (tpm2.FlushContext{FlushHandle: a.ak.Handle}).Execute(a.t); err != nil {
		return fmt.Errorf("tpm: flush the attestation key: %w", err)
	}
	return nil
}

// CallError is an attestation whose challenge call failed: no answer came
// (Status 0: Err says why) or the server answered Status. The caller
// decides whether to call again; the TPM was not used.
type CallError struct {
	Status int
	Err    error
}

func (e *CallError) Error() string { return e.Err.Error() }
func (e *CallError) Unwrap() error { return e.Err }

// HTTPStatus is the server's status, 0 when no answer came.
func (e *CallError) HTTPStatus() int { return e.Status }

// Attest runs TPM attestation for an enrolment with the credsign API c:
// it asks POST /v1/enrol/attest for a challenge for deviceID (auth adds
// the enrolment token), activates it, has the AK certify key with the
// challenge ID, and returns the `attestation` member of the enrol request
// that goes with a DPoP proof signed by key. A refusal is an error naming
// the HTTP status and the server's detail.
func (a *Attestor) Attest(ctx context.Context, c *client.ClientWithResponses, auth client.RequestEditorFn, deviceID string, key *Key) (client.TpmAttestation, error) {
	var req client.EnrolAttestRequest
	req.DeviceID, req.Ek.Cert, req.Ak.Public = deviceID, a.ekCert, a.akPublic
	rsp, err := c.EnrolAttestWithResponse(ctx, req, auth)
	if err != nil {
		return client.TpmAttestation{}, &CallError{Err: fmt.Errorf("tpm attestation: %w", err)}
	}
	if rsp.JSON200 == nil {
		var p struct{ Detail string }
		_ = json.Unmarshal(rsp.Body, &p)
		return client.TpmAttestation{}, &CallError{Status: rsp.StatusCode(), Err: fmt.Errorf("tpm attestation: %s: %s", rsp.Status(), p.Detail)}
	}
	ch := rsp.JSON200
	secret, err := a.Activate(ch.Credential.CredentialBlob, ch.Credential.Secret)
	if err != nil {
		return client.TpmAttestation{}, err
	}
	cert, err := a.Certify(key, []byte(ch.ChallengeID))
	if err != nil {
		return client.TpmAttestation{}, err
	}
	out := client.TpmAttestation{ChallengeID: ch.ChallengeID, ActivatedSecret: secret}
	out.KeyCertify.Public, out.KeyCertify.Attest, out.KeyCertify.Signature = cert.Public, cert.Attest, cert.Signature
	return out, nil
}
