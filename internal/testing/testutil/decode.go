package testutil

import "testing"

// Decode returns decode(s), with decode a decoder such as
// base64.StdEncoding.DecodeString or hex.DecodeString, and fails t when s
// does not decode.
func Decode(t testing.TB, decode func(string) ([]byte, error), s string) []byte {
	t.Helper()
	b, err := decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
