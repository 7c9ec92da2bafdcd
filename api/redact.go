package api

import (
	"strings"

	"github.com/credsign/credsign/service"
)

// redactor hides token texts that a caller pasted into a URL by mistake,
// so that they never reach the access log: any path segment that holds the
// admin token (whatever its form: the operator chooses it) or something
// that starts like a minted token.
type redactor struct {
	admin string
}

func newRedactor(adminToken string) *redactor {
	return &redactor{admin: adminToken}
}

// tokenMarks are the prefixes of minted tokens.
var tokenMarks = []string{service.PrefixProvisioner, service.PrefixDevice, service.PrefixAdmin}

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
	if rd.admin != "" && strings.Contains(s, rd.admin) {
		return true
	}
	for _, m := range tokenMarks {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
