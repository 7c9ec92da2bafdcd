package clouds

import (
	"testing"
)

func mustSign(t *testing.T, req Request) Credentials {
	t.Helper()
	c, err := Sign(req)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return c
}
