package testutil

import (
	"encoding/json"
	"testing"
)

// MustJSON returns the JSON encoding of v, failing t when it has none.
func MustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
