package api

import (
	"slices"
	"strings"
	"sync"

	"github.com/credsign/credsign/service"
)

// redactor hides token texts that a caller pasted into a URL by mistake,
// so that they never reach the access log: any path segment that holds the
// admin token (whatever its form: the operator chooses it), the prefix of
// any kind of minted token (service.TokenKinds), or a run of hex digits as
// long as a minted token's random part (a token pasted without its prefix).
type redactor struct {
	marks []string

	mu     sync.RWMutex
	admins []string
}

// newRedactor returns the redactor of the admin tokens and of every kind of
// token in kinds (service.TokenKinds).
func newRedactor(adminTokens []string, kinds []service.TokenKind) *redactor {
	rd := &redactor{}
	rd.addAdmins(adminTokens)
	for _, k := range kinds {
		rd.marks = append(rd.marks, k.Prefix)
	}
	return rd
}

// addAdmins makes the redactor hide adminTokens too, and keep hiding the
// ones it already hides.
func (rd *redactor) addAdmins(adminTokens []string) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for _, t := range adminTokens {
		if t != "" && !slices.Contains(rd.admins, t) {
			rd.admins = append(rd.admins, t)
		}
	}
}

// path returns p with every segment that holds a token replaced by REDACTED.
func (rd *redactor) path(p string) string {
	if !rd.holdsToken(p) {
		return p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if rd.holdsToken(seg) {
			segs[i] = "REDACTED"
		}
	}
	p = strings.Join(segs, "/")
	if rd.holdsToken(p) {
		// The admin token itself holds a '/' and spans segments.
		return "REDACTED"
	}
	return p
}

func (rd *redactor) holdsToken(s string) bool {
	rd.mu.RLock()
	for _, a := range rd.admins {
		if strings.Contains(s, a) {
			rd.mu.RUnlock()
			return true
		}
	}
	rd.mu.RUnlock()
	for _, m := range rd.marks {
		if strings.Contains(s, m) {
			return true
		}
	}
	return hexRun(s, service.TokenRandomHexDigits)
}

// hexRun reports whether s holds n hex digits in a row.
func hexRun(s string, n int) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' {
			if run++; run >= n {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}
