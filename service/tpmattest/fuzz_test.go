package tpmattest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/credsign/credsign/internal/testing/swtpmtest"
	"github.com/credsign/credsign/service/tpmattest"
)

// FuzzChallenge feeds arbitrary EK certificates and AK public areas to
// Challenge: it never panics, and what it refuses it refuses as malformed
// or refused.
func FuzzChallenge(f *testing.F) {
	sw := swtpmtest.NewSoftware(f)
	v, err := tpmattest.New(tpmattest.Config{CAs: sw.CAPEM})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sw.EKCert, sw.AKPublic)
	f.Add(sw.EKCert, sw.AKPublic[:len(sw.AKPublic)-1])
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, []byte{0, 0})
	f.Fuzz(func(t *testing.T, ek, ak []byte) {
		_, err := v.Challenge(context.Background(), tpmattest.Binding{DeviceID: "d"}, tpmattest.Request{EKCert: ek, AKPublic: ak})
		if err != nil && !errors.Is(err, tpmattest.ErrMalformed) && !errors.Is(err, tpmattest.ErrRefused) {
			t.Fatalf("Challenge: %v", err)
		}
	})
}
