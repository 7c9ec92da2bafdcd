package api

import (
	"strconv"
	"strings"
)

// ifMatch is a parsed If-Match header: either "*" (any current version) or
// a list of device versions taken from strong entity tags.
type ifMatch struct {
	any      bool
	versions []int64
}

// matches reports whether a device at version v satisfies the condition.
func (m ifMatch) matches(v int64) bool {
	if m.any {
		return true
	}
	for _, w := range m.versions {
		if w == v {
			return true
		}
	}
	return false
}

// parseIfMatch parses an If-Match header value (RFC 9110 section 13.1.1).
// Weak tags and tags that are not device versions are skipped, since they
// can never match under the strong comparison If-Match requires; a value
// with no usable tag therefore matches nothing. ok is false when the value
// is not a list of entity tags at all.
func parseIfMatch(h string) (m ifMatch, ok bool) {
	h = strings.TrimSpace(h)
	if h == "*" {
		return ifMatch{any: true}, true
	}
	for len(h) > 0 {
		weak := false
		if strings.HasPrefix(h, "W/") {
			weak = true
			h = h[2:]
		}
		if len(h) < 2 || h[0] != '"' {
			return ifMatch{}, false
		}
		end := strings.IndexByte(h[1:], '"')
		if end < 0 {
			return ifMatch{}, false
		}
		tag := h[1 : 1+end]
		h = strings.TrimLeft(h[end+2:], " \t")
		if !weak {
			if v, err := strconv.ParseInt(tag, 10, 64); err == nil && v > 0 && strconv.FormatInt(v, 10) == tag {
				m.versions = append(m.versions, v)
			}
		}
		if h == "" {
			break
		}
		if h[0] != ',' {
			return ifMatch{}, false
		}
		h = strings.TrimLeft(h[1:], " \t")
	}
	return m, true
}

// etag returns the strong entity tag of a device version.
func etag(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}
