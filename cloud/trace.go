package signing

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Step is one step of a recipe as Explain reports it.
type Step struct {
	// Name says what the step computes ("content", "key", "password").
	Name string `json:"name"`
	// Detail is the value or explanation; it never contains the secret.
	Detail string `json:"detail"`
}

// trace collects steps when explaining; a nil *trace records nothing, so
// Sign pays nothing for it.
type trace struct {
	steps []Step
}

func (t *trace) add(name, format string, args ...any) {
	if t == nil {
		return
	}
	t.steps = append(t.steps, Step{Name: name, Detail: fmt.Sprintf(format, args...)})
}

// on reports whether steps are being recorded, so callers can skip building
// details that cost time.
func (t *trace) on() bool { return t != nil }

// redacted describes a secret without revealing it.
func redacted(secret string) string {
	return fmt.Sprintf("<secret: %d bytes, redacted>", len(secret))
}

// keyNote describes the key bytes of a base64 secret without revealing them.
func base64KeyNote(secret string) string {
	n := base64.StdEncoding.DecodedLen(len(secret)) - strings.Count(secret, "=")
	return fmt.Sprintf("base64-decoded secret: %d key bytes from %d characters of base64 (redacted)", n, len(secret))
}
