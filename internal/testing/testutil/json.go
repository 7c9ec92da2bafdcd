package testutil

import (
	"encoding/json"
	"testing"
)

// MustJSON returns v encoded by encoding/json, failing t if it cannot be.
func MustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
