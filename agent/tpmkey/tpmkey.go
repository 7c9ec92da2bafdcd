// Package tpmkey keeps the agent's device key in a TPM 2.0: an ECDSA P-256
// signing key created inside the TPM under the owner hierarchy's storage
// root key (SRK), never exported, used through crypto.Signer. It also does
// the device's half of TPM attestation at enrolment (attest.go).
//
// The key lives in the TPM's key hierarchy, not in a persistent handle: the
// TPM wraps the key's private part with the SRK (which never leaves the
// TPM) and the agent keeps the wrapped blob in a file, in the TSS2 PRIVATE
// KEY PEM format of tpm2-tss-engine and the tpm2-openssl provider (parent
// TPM_RH_OWNER: the SRK is the primary key of the TCG's ECC P-256 SRK
// template, re-created by every Load). The blob is useless outside the TPM
// that wrapped it, so the file needs no secrecy beyond 0600; nothing is
// written into the TPM's NV memory and nothing needs the owner's password
// beyond the empty default.
//
// The agent links this package only when a TPM is configured; it uses
// github.com/google/go-tpm's tpm2 package.
package tpmkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// maxResponse bounds a TPM response read from a socket (TPM responses are
// at most a few kilobytes; the TCG's largest buffers are 4 KiB).
const maxResponse = 64 << 10

// Open connects to a TPM: a character device (/dev/tpmrm0, the kernel's
// resource manager, is the one to use on Linux) or "tcp:host:port", a
// socket that takes raw TPM 2.0 commands, as swtpm's server socket does.
func Open(path string) (transport.TPMCloser, error) {
	if addr, ok := strings.CutPrefix(path, "tcp:"); ok {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("tpm: %w", err)
		}
		return &stream{c: c}, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return nil, fmt.Errorf("tpm: %s is not a character device (a TPM is /dev/tpmrm0, or tcp:host:port for a TPM simulator)", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	return transport.FromReadWriteCloser(f), nil
}

// stream is a TPM behind a byte stream: each command is written whole and
// its response read whole, its length taken from the response header
// (a read from a socket may return part of a response).
type stream struct {
	mu sync.Mutex
	c  net.Conn
}

// Send implements transport.TPM.
func (s *stream) Send(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.c.Write(cmd); err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(s.c, hdr); err != nil {
		return nil, fmt.Errorf("tpm: response: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[2:6])
	if n < 10 || n > maxResponse {
		return nil, fmt.Errorf("tpm: response of %d bytes", n)
	}
	rsp := make([]byte, n)
	copy(rsp, hdr)
	if _, err := io.ReadFull(s.c, rsp[10:]); err != nil {
		return nil, fmt.Errorf("tpm: response: %w", err)
	}
	return rsp, nil
}

// Close implements transport.TPMCloser.
func (s *stream) Close() error { return s.c.Close() }

// KeyTemplate is the public template of the device key: ECDSA P-256 with
// SHA-256, created in the TPM (sensitiveDataOrigin), bound to it and to
// its parent (fixedTPM, fixedParent: it can be neither duplicated nor
// exported), a plain signing key (not restricted: it signs any digest),
// usable with the empty password (userWithAuth) and outside the TPM's
// dictionary-attack lockout (noDA: there is no password to guess).
var KeyTemplate = p256Template(false)

// p256Template is the template of an ECDSA P-256 signing key with SHA-256
// made in the TPM, bound to it and to its parent, usable with the empty
// password and outside the dictionary-attack lockout; restricted or not
// (see AKTemplate and KeyTemplate).
func p256Template(restricted bool) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			Restricted:          restricted,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
	}
}

// srk creates the owner hierarchy's storage root key (the TCG's ECC P-256
// SRK template: the same key every time on the same TPM). The caller
// flushes it.
func srk(t transport.TPM) (tpm2.AuthHandle, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t)
	if err != nil {
		return tpm2.AuthHandle{}, fmt.Errorf("tpm: storage root key: %w", err)
	}
	return tpm2.AuthHandle{Handle: rsp.ObjectHandle, Name: rsp.Name, Auth: tpm2.PasswordAuth(nil)}, nil
}

func flush(t transport.TPM, h tpm2.TPMHandle) {
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(t)
}

// TSS2 PRIVATE KEY (the ASN.1 TPMKey of the TPM 2.0 key file format).
const pemType = "TSS2 PRIVATE KEY"

var oidLoadableKey = asn1.ObjectIdentifier{2, 23, 133, 10, 1, 3}

type tssKey struct {
	Type      asn1.ObjectIdentifier
	EmptyAuth bool `asn1:"optional,explicit,tag:0"`
	Parent    int64
	Public    []byte // TPM2B_PUBLIC
	Private   []byte // TPM2B_PRIVATE
}

// Create creates a device key in the TPM and writes its wrapped form to
// file (a new file, mode 0600; an existing file is never replaced). The
// private part never leaves the TPM unwrapped.
func Create(t transport.TPM, file string) error {
	parent, err := srk(t)
	if err != nil {
		return err
	}
	defer flush(t, parent.Handle)
	rsp, err := tpm2.Create{ParentHandle: parent, InPublic: tpm2.New2B(KeyTemplate)}.Execute(t)
	if err != nil {
		return fmt.Errorf("tpm: create the key: %w", err)
	}
	der, err := asn1.Marshal(tssKey{
		Type: oidLoadableKey, EmptyAuth: true, Parent: int64(tpm2.TPMRHOwner),
		Public: tpm2.Marshal(rsp.OutPublic), Private: tpm2.Marshal(rsp.OutPrivate),
	})
	if err != nil {
		return fmt.Errorf("tpm: key file: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("tpm key file: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: pemType, Bytes: der}); err != nil {
		_ = f.Close()
		_ = os.Remove(file)
		return fmt.Errorf("tpm key file: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(file)
		return fmt.Errorf("tpm key file: %w", err)
	}
	return nil
}

// Key is a device key loaded in the TPM. It is safe for concurrent use.
type Key struct {
	mu     sync.Mutex
	t      transport.TPM
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	public []byte // the key's TPM2B_PUBLIC, as the TPM gave it
	pub    *ecdsa.PublicKey
}

// Load loads the key that Create wrote to file into the TPM it was created
// in. Close flushes it from the TPM (the connection stays the caller's).
func Load(t transport.TPM, file string) (*Key, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tpm key file: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemType {
		return nil, fmt.Errorf("tpm key file %s: no %s PEM block", file, pemType)
	}
	var k tssKey
	if rest, err := asn1.Unmarshal(blk.Bytes, &k); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("tpm key file %s: not a TPM key", file)
	}
	if !k.Type.Equal(oidLoadableKey) || k.Parent != int64(tpm2.TPMRHOwner) || !k.EmptyAuth {
		return nil, fmt.Errorf("tpm key file %s: not a loadable key under the owner hierarchy's SRK with no password", file)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](k.Public)
	if err != nil {
		return nil, fmt.Errorf("tpm key file %s: public area: %w", file, err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](k.Private)
	if err != nil {
		return nil, fmt.Errorf("tpm key file %s: private area: %w", file, err)
	}
	parent, err := srk(t)
	if err != nil {
		return nil, err
	}
	defer flush(t, parent.Handle)
	rsp, err := tpm2.Load{ParentHandle: parent, InPrivate: *priv, InPublic: *pub}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm: load the key (was it created in this TPM?): %w", err)
	}
	key := &Key{t: t, handle: rsp.ObjectHandle, name: rsp.Name}
	if err := key.readPublic(); err != nil {
		flush(t, rsp.ObjectHandle)
		return nil, err
	}
	return key, nil
}

// readPublic reads the key's public area back from the TPM: what the TPM
// holds, not what the file claims.
func (k *Key) readPublic() error {
	rsp, err := tpm2.ReadPublic{ObjectHandle: k.handle}.Execute(k.t)
	if err != nil {
		return fmt.Errorf("tpm: read the key's public area: %w", err)
	}
	p, err := rsp.OutPublic.Contents()
	if err != nil {
		return fmt.Errorf("tpm: key's public area: %w", err)
	}
	pub, err := ECDSAPublic(p)
	if err != nil {
		return err
	}
	k.public = tpm2.Marshal(rsp.OutPublic)
	k.pub = pub
	return nil
}

// ECDSAPublic returns the P-256 public key of a TPM public area.
func ECDSAPublic(p *tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	if p.Type != tpm2.TPMAlgECC {
		return nil, errors.New("tpm: not an ECC key")
	}
	parms, err := p.Parameters.ECCDetail()
	if err != nil {
		return nil, fmt.Errorf("tpm: ECC parameters: %w", err)
	}
	if parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, errors.New("tpm: not a P-256 key")
	}
	pt, err := p.Unique.ECC()
	if err != nil {
		return nil, fmt.Errorf("tpm: ECC point: %w", err)
	}
	pub, err := tpm2.ECDSAPub(parms, pt)
	if err != nil {
		return nil, fmt.Errorf("tpm: ECC point: %w", err)
	}
	return pub, nil
}

// Public implements crypto.Signer: the key's P-256 public key.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// PublicArea is the key's TPM2B_PUBLIC as the TPM holds it (its
// attributes show that the TPM made the key and will not let it go).
func (k *Key) PublicArea() []byte { return k.public }

// Sign implements crypto.Signer: it signs a SHA-256 digest in the TPM and
// returns the ASN.1 ECDSA signature, as every crypto.Signer does (a JWS
// takes the 64-byte r‖s instead; the proof's signer converts it, as it does
// for a key in a file).
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
		return nil, errors.New("tpm: the key signs SHA-256 digests only")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	rsp, err := tpm2.Sign{
		KeyHandle: tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: tpm2.PasswordAuth(nil)},
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		InScheme: tpm2.TPMTSigScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
		},
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(k.t)
	if err != nil {
		return nil, fmt.Errorf("tpm: sign: %w", err)
	}
	sig, err := rsp.Signature.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("tpm: signature: %w", err)
	}
	return asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(sig.SignatureR.Buffer), new(big.Int).SetBytes(sig.SignatureS.Buffer),
	})
}

// Close flushes the key from the TPM (the key file keeps it).
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := (tpm2.FlushContext{FlushHandle: k.handle}).Execute(k.t); err != nil {
		return fmt.Errorf("tpm: flush the key: %w", err)
	}
	return nil
}
