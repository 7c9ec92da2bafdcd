// Package tpmattest is the server's half of TPM attestation at enrolment:
// proof that a device key lives in a genuine TPM, by credential activation
// against the TPM's endorsement key (EK), as Azure DPS does.
//
//  1. The device sends its EK certificate and the public area of a fresh
//     attestation key (AK). Challenge verifies the EK certificate against
//     the configured CAs (the TPM makers'), checks that the AK is a
//     restricted signing key bound to its TPM, and makes a credential (the
//     TPM's MakeCredential, done in software with go-tpm): a random secret
//     that only the TPM holding that EK can open, and only while it holds a
//     key of the AK's exact name.
//  2. The device opens it (TPM2_ActivateCredential), has the AK certify its
//     device key (TPM2_Certify, with the challenge ID as qualifying data)
//     and enrols with the secret and the certification. VerifyAttestation
//     checks the secret, the AK's signature, that the certified key is the
//     proof's key and that the TPM made it and will not let it go
//     (fixedTPM, fixedParent, sensitiveDataOrigin).
//
// Challenges are kept in memory on the replica that made them, for TTL,
// and are used once: with several replicas, a device's two calls must reach
// the same replica (a failed enrolment starts again from step 1).
package tpmattest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// Errors: every error wraps one of these.
var (
	// ErrMalformed: the request does not parse (422).
	ErrMalformed = errors.New("malformed TPM attestation")
	// ErrRefused: the attestation parses but does not prove what it
	// must (403).
	ErrRefused = errors.New("TPM attestation refused")
	// ErrBusy: too many challenges outstanding on this replica (503).
	ErrBusy = errors.New("too many TPM attestations under way")
)

// Limits.
const (
	// DefaultTTL is how long a challenge may be answered.
	DefaultTTL = 5 * time.Minute
	// MaxChallenges bounds the challenges one replica keeps.
	MaxChallenges = 10_000
	// maxBlob bounds each binary field (an EK certificate is about 1.5 KB).
	maxBlob    = 8 << 10
	secretSize = 32
)

// Binding is what a challenge is for: a device ID in a group, asked by an
// enrolment token. VerifyAttestation accepts the answer only for the same.
type Binding struct {
	Group, DeviceID, TokenID string
}

// Request is the device's first call: its EK certificate (DER) and its
// AK's public area (TPM2B_PUBLIC).
type Request struct {
	EKCert, AKPublic []byte
}

// Challenge is the server's answer: the credential made for the AK with
// the EK (TPM2_ActivateCredential's credentialBlob and secret).
type Challenge struct {
	ID             string
	CredentialBlob []byte
	Secret         []byte
	ExpiresAt      time.Time
}

// Attestation is the device's second call: the secret it activated and the
// AK's certification of its device key.
type Attestation struct {
	ChallengeID     string
	ActivatedSecret []byte
	// KeyPublic is the device key's TPM2B_PUBLIC.
	KeyPublic []byte
	// Attest is the TPMS_ATTEST of TPM2_Certify; Signature the AK's
	// TPMT_SIGNATURE over it.
	Attest, Signature []byte
}

type challenge struct {
	b       Binding
	secret  []byte
	ak      *ecdsa.PublicKey
	expires time.Time
}

// Verifier makes challenges and verifies the answers. It is safe for
// concurrent use.
type Verifier struct {
	roots *x509.CertPool
	ttl   time.Duration
	now   func() time.Time

	mu sync.Mutex
	m  map[string]challenge
}

// Config configures a Verifier.
type Config struct {
	// CAs holds the certificates that issue EK certificates (PEM: TPM
	// makers' roots and intermediates, each a trust anchor).
	CAs []byte
	// TTL bounds a challenge's life; default DefaultTTL.
	TTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// New returns a Verifier that trusts the EK CAs of cfg.
func New(cfg Config) (*Verifier, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := cfg.CAs; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("TPM EK CAs: certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("TPM EK CAs: no PEM certificate")
	}
	v := &Verifier{roots: pool, ttl: cfg.TTL, now: cfg.Now, m: map[string]challenge{}}
	if v.ttl <= 0 {
		v.ttl = DefaultTTL
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// WithClock returns a verifier with v's CAs and TTL that reads the clock
// now (the service's, so that one clock rules every time), with no
// challenges of its own yet.
func (v *Verifier) WithClock(now func() time.Time) *Verifier {
	return &Verifier{roots: v.roots, ttl: v.ttl, now: now, m: map[string]challenge{}}
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

func refused(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// Challenge verifies the EK certificate and the AK and makes a credential
// for the AK that only the EK's TPM can activate.
func (v *Verifier) Challenge(ctx context.Context, b Binding, req Request) (Challenge, error) {
	if err := ctx.Err(); err != nil {
		return Challenge{}, err
	}
	if len(req.EKCert) == 0 || len(req.EKCert) > maxBlob || len(req.AKPublic) == 0 || len(req.AKPublic) > maxBlob {
		return Challenge{}, malformed("ek.cert and ak.public are required, each at most %d bytes", maxBlob)
	}
	ekPub, err := v.verifyEK(req.EKCert)
	if err != nil {
		return Challenge{}, err
	}
	akArea, ak, err := parsePublic(req.AKPublic, "ak.public")
	if err != nil {
		return Challenge{}, err
	}
	a := akArea.ObjectAttributes
	if !a.Restricted || !a.SignEncrypt || a.Decrypt || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin {
		return Challenge{}, refused("the AK must be a restricted signing key made in its TPM (restricted, sign, fixedTPM, fixedParent, sensitiveDataOrigin; not decrypt)")
	}
	if err := ecdsaSHA256Scheme(akArea); err != nil {
		return Challenge{}, refused("the AK %v", err)
	}
	akName, err := tpm2.ObjectName(akArea)
	if err != nil {
		return Challenge{}, malformed("ak.public: %v", err)
	}
	ekArea := tpm2.RSAEKTemplate
	ekArea.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: ekPub.N.FillBytes(make([]byte, 256))})
	kem, err := tpm2.ImportEncapsulationKey(&ekArea)
	if err != nil {
		return Challenge{}, refused("the EK: %v", err)
	}
	secret := make([]byte, secretSize)
	_, _ = rand.Read(secret)
	blob, encSecret, err := tpm2.CreateCredential(rand.Reader, kem, akName.Buffer, secret)
	if err != nil {
		return Challenge{}, fmt.Errorf("make credential: %w", err)
	}
	idb := make([]byte, 16)
	_, _ = rand.Read(idb)
	id := base64.RawURLEncoding.EncodeToString(idb)
	now := v.now()
	exp := now.Add(v.ttl)
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.m) >= MaxChallenges {
		for k, c := range v.m {
			if !now.Before(c.expires) {
				delete(v.m, k)
			}
		}
		if len(v.m) >= MaxChallenges {
			return Challenge{}, ErrBusy
		}
	}
	v.m[id] = challenge{b: b, secret: secret, ak: ak, expires: exp}
	return Challenge{ID: id, CredentialBlob: blob, Secret: encSecret, ExpiresAt: exp}, nil
}

// verifyEK verifies the EK certificate against the CAs and returns its
// RSA 2048 public key.
func (v *Verifier) verifyEK(der []byte) (*rsa.PublicKey, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, malformed("ek.cert is not a DER X.509 certificate")
	}
	// EK certificates carry the TPM's maker and model in a critical
	// subject alternative name of directoryName form, which crypto/x509
	// does not handle (TCG EK Credential Profile §3.2.9); it is not a
	// name to check here.
	exts := cert.UnhandledCriticalExtensions[:0]
	for _, e := range cert.UnhandledCriticalExtensions {
		if !e.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			exts = append(exts, e)
		}
	}
	cert.UnhandledCriticalExtensions = exts
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       v.roots,
		CurrentTime: v.now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, refused("the EK certificate does not verify against the TPM EK CAs: %v", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != 2048 || pub.E != 65537 {
		return nil, refused("the EK certificate is not for an RSA 2048 EK (the only kind supported)")
	}
	return pub, nil
}

// parsePublic parses a TPM2B_PUBLIC of an ECDSA P-256 key, refusing
// anything but its one canonical encoding (the key's name is the hash of
// those bytes).
func parsePublic(b []byte, field string) (*tpm2.TPMTPublic, *ecdsa.PublicKey, error) {
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) != len(b)-2 {
		return nil, nil, malformed("%s is not a TPM2B_PUBLIC", field)
	}
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](b[2:])
	if err != nil || !bytes.Equal(tpm2.Marshal(*p), b[2:]) {
		return nil, nil, malformed("%s is not a TPM2B_PUBLIC", field)
	}
	if p.NameAlg != tpm2.TPMAlgSHA256 {
		return nil, nil, refused("%s: the name algorithm must be SHA-256", field)
	}
	pub, err := eccP256(p)
	if err != nil {
		return nil, nil, refused("%s: %v", field, err)
	}
	return p, pub, nil
}

func eccP256(p *tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	if p.Type != tpm2.TPMAlgECC {
		return nil, errors.New("not an ECC key")
	}
	parms, err := p.Parameters.ECCDetail()
	if err != nil || parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, errors.New("not a P-256 key")
	}
	pt, err := p.Unique.ECC()
	if err != nil {
		return nil, errors.New("no ECC point")
	}
	pub, err := tpm2.ECDSAPub(parms, pt)
	if err != nil {
		return nil, errors.New("not a point on P-256")
	}
	return pub, nil
}

func ecdsaSHA256Scheme(p *tpm2.TPMTPublic) error {
	parms, _ := p.Parameters.ECCDetail()
	if parms.Scheme.Scheme != tpm2.TPMAlgECDSA {
		return errors.New("must sign with ECDSA")
	}
	d, err := parms.Scheme.Details.ECDSA()
	if err != nil || d.HashAlg != tpm2.TPMAlgSHA256 {
		return errors.New("must sign with ECDSA and SHA-256")
	}
	return nil
}

// take removes and returns the challenge id, if it is for b and alive.
func (v *Verifier) take(id string, b Binding) (challenge, error) {
	v.mu.Lock()
	c, ok := v.m[id]
	delete(v.m, id)
	v.mu.Unlock()
	switch {
	case !ok:
		return challenge{}, refused("no such challenge on this server (unknown, used or expired): ask POST /v1/enrol/attest again")
	case !v.now().Before(c.expires):
		return challenge{}, refused("the challenge expired: ask POST /v1/enrol/attest again")
	case c.b != b:
		return challenge{}, refused("the challenge was made for another device or enrolment token")
	}
	return c, nil
}

// VerifyAttestation checks the device's answer to a challenge made for b:
// the activated secret, the AK's certification of the device key, and that
// the certified key is key (the proof's) and lives in the TPM. The
// challenge is used up whatever the outcome.
func (v *Verifier) VerifyAttestation(ctx context.Context, b Binding, a Attestation, key crypto.PublicKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := v.take(a.ChallengeID, b)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(a.ActivatedSecret, c.secret) != 1 {
		return refused("the activated secret is wrong: the AK is not in the TPM of that EK")
	}
	return checkCertification(c.ak, a, key)
}

// checkCertification checks the AK's certification of the device key in a,
// for challenge a.ChallengeID, and that the key is key.
func checkCertification(ak *ecdsa.PublicKey, a Attestation, key crypto.PublicKey) error {
	if len(a.Attest) > maxBlob || len(a.Signature) > maxBlob || len(a.KeyPublic) > maxBlob {
		return malformed("a field is longer than %d bytes", maxBlob)
	}
	// The AK's signature, over exactly the bytes sent.
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](a.Signature)
	if err != nil || !bytes.Equal(tpm2.Marshal(*sig), a.Signature) {
		return malformed("keyCertify.signature is not a TPMT_SIGNATURE")
	}
	es, err := sig.Signature.ECDSA()
	if sig.SigAlg != tpm2.TPMAlgECDSA || err != nil || es.Hash != tpm2.TPMAlgSHA256 {
		return refused("keyCertify.signature is not an ECDSA SHA-256 signature")
	}
	h := sha256.Sum256(a.Attest)
	if !ecdsa.Verify(ak, h[:], new(big.Int).SetBytes(es.SignatureR.Buffer), new(big.Int).SetBytes(es.SignatureS.Buffer)) {
		return refused("keyCertify.signature does not verify with the AK")
	}
	// What the AK signed: a TPM-made certification of a key's name, for
	// this challenge.
	at, err := tpm2.Unmarshal[tpm2.TPMSAttest](a.Attest)
	if err != nil || !bytes.Equal(tpm2.Marshal(*at), a.Attest) {
		return malformed("keyCertify.attest is not a TPMS_ATTEST")
	}
	if at.Magic != tpm2.TPMGeneratedValue || at.Type != tpm2.TPMSTAttestCertify {
		return refused("keyCertify.attest is not a TPM2_Certify attestation")
	}
	if !bytes.Equal(at.ExtraData.Buffer, []byte(a.ChallengeID)) {
		return refused("keyCertify.attest was not made for this challenge (qualifying data must be the challenge ID)")
	}
	ci, err := at.Attested.Certify()
	if err != nil {
		return malformed("keyCertify.attest has no certify information")
	}
	// The certified key: its name, attributes and public key.
	kp, kpub, err := parsePublic(a.KeyPublic, "keyCertify.public")
	if err != nil {
		return err
	}
	name, err := tpm2.ObjectName(kp)
	if err != nil || !bytes.Equal(name.Buffer, ci.Name.Buffer) {
		return refused("keyCertify.public is not the key the AK certified")
	}
	ka := kp.ObjectAttributes
	if !ka.FixedTPM || !ka.FixedParent || !ka.SensitiveDataOrigin || !ka.SignEncrypt {
		return refused("the certified key may leave its TPM or was not made in it (fixedTPM, fixedParent, sensitiveDataOrigin and sign are required)")
	}
	if pk, ok := key.(*ecdsa.PublicKey); !ok || !pk.Equal(kpub) {
		return refused("the certified key is not the key of the enrolment's proof")
	}
	return nil
}
