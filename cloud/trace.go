package cloud

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

// Trace collects steps when explaining; a nil *Trace records nothing, so
// Sign pays nothing for it.
type Trace struct {
	steps []Step
}

// Add records a step, its detail formatted.
func (t *Trace) Add(name, format string, args ...any) {
	if t == nil {
		return
	}
	t.steps = append(t.steps, Step{Name: name, Detail: fmt.Sprintf(format, args...)})
}

// On reports whether steps are being recorded, so callers can skip building
// details that cost time.
func (t *Trace) On() bool { return t != nil }

// Redacted describes a secret without revealing it.
func Redacted(secret string) string {
	return fmt.Sprintf("<secret: %d bytes, redacted>", len(secret))
}

// Base64KeyNote describes the key bytes of a base64 secret without revealing them.
func Base64KeyNote(secret string) string {
	n := base64.StdEncoding.DecodedLen(len(secret)) - strings.Count(secret, "=")
	return fmt.Sprintf("base64-decoded secret: %d key bytes from %d characters of base64 (redacted)", n, len(secret))
}
