package swtpmtest

import (
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/credsign/credsign/agent/tpmkey"
)

// This file holds the device's side (agent/tpmkey) of the tests that run
// swtpm. It returns tpmkey's values and plain bytes, never
// service/tpmattest's types: tpmattest's own tests import this package.

// Open connects to the running swtpm as the agent does (tpmkey.Open) and
// closes the connection when the test ends.
func (sw *TPM) Open(t testing.TB) transport.TPMCloser {
	t.Helper()
	tpm, err := tpmkey.Open("tcp:" + sw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tpm.Close() })
	return tpm
}

// NewKey creates a device key in tpm (tpmkey.Create, its file in a
// temporary directory) and loads it; the key is flushed when the test ends.
func NewKey(t testing.TB, tpm transport.TPM) *tpmkey.Key {
	t.Helper()
	file := filepath.Join(t.TempDir(), "key.pem")
	if err := tpmkey.Create(tpm, file); err != nil {
		t.Fatal(err)
	}
	key, err := tpmkey.Load(tpm, file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = key.Close() })
	return key
}

// Device is a manufactured swtpm with a device key and its attestor (EK
// certificate and AK), all closed when the test ends.
type Device struct {
	TPM transport.TPMCloser
	Key *tpmkey.Key
	Att *tpmkey.Attestor
}

// NewDevice starts an swtpm manufactured with an EK certificate from ca
// and makes its device key and attestor.
func NewDevice(t testing.TB, ca *CA) *Device {
	t.Helper()
	tpm := Start(t, Manufacture(t, ca)).Open(t)
	key := NewKey(t, tpm)
	att, err := tpmkey.NewAttestor(tpm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = att.Close() })
	return &Device{TPM: tpm, Key: key, Att: att}
}

// Answer is what an honest device does with a challenge (its ID, credential
// blob and encrypted secret): it activates the credential and has the AK
// certify the device key with the challenge ID.
func (d *Device) Answer(t testing.TB, id string, credentialBlob, secret []byte) (activated []byte, cert tpmkey.Certification) {
	t.Helper()
	activated, err := d.Att.Activate(credentialBlob, secret)
	if err != nil {
		t.Fatal(err)
	}
	return activated, d.Certify(t, id)
}

// Certify has the AK certify the device key with the challenge ID id.
func (d *Device) Certify(t testing.TB, id string) tpmkey.Certification {
	t.Helper()
	cert, err := d.Att.Certify(d.Key, []byte(id))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
