// Package es256 turns the ASN.1 signature a crypto.Signer of a P-256 key
// gives (a file key, a key in a TPM or an HSM) into the fixed 64 bytes
// r‖s that JWS's ES256 takes (RFC 7518 section 3.4). The agent signs its
// proofs with it; it imports nothing, so the agent links no server code.
package es256

import (
	"encoding/asn1"
	"errors"
	"math/big"
)

// ErrNotP256 is FromASN1's error for anything but one ASN.1 ECDSA
// signature whose r and s are positive and fit in 256 bits.
var ErrNotP256 = errors.New("not an ECDSA P-256 signature")

// FromASN1 returns der, an ASN.1 ECDSA P-256 signature, as r‖s, each
// 32 bytes big-endian.
func FromASN1(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 ||
		rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return nil, ErrNotP256
	}
	out := make([]byte, 64)
	rs.R.FillBytes(out[:32])
	rs.S.FillBytes(out[32:])
	return out, nil
}
