package api

import (
	"strconv"
	"strings"

	"github.com/credsign/credsign/secrets"
)

// deviceTag is what a device's entity tag names: one version of one
// incarnation of the device. The creation time tells a device deleted and
// created again (whose versions start over at 1) from the one a client
// read, so that an old tag can never match the new device.
type deviceTag struct {
	version int64
	created int64 // CreatedAt in Unix nanoseconds
}

// tagOf returns the tag of a stored device.
func tagOf(d secrets.Device) deviceTag {
	return deviceTag{version: d.Version, created: d.CreatedAt.UnixNano()}
}

// String returns the tag's opaque text: version.created.
func (t deviceTag) String() string {
	return strconv.FormatInt(t.version, 10) + "." + strconv.FormatInt(t.created, 10)
}

// ifMatch is a parsed If-Match header: either "*" (any current version) or
// a list of device tags taken from strong entity tags.
type ifMatch struct {
	any  bool
	tags []deviceTag
}

// matches reports whether a device with tag t satisfies the condition.
func (m ifMatch) matches(t deviceTag) bool {
	if m.any {
		return true
	}
	for _, w := range m.tags {
		if w == t {
			return true
		}
	}
	return false
}

// parseIfMatch parses an If-Match header value (RFC 9110 section 13.1.1).
// Weak tags and tags that are not device tags are skipped, since they can
// never match under the strong comparison If-Match requires; a value with
// no usable tag therefore matches nothing. ok is false when the value is
// not a list of entity tags at all.
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
		if t, ok := parseDeviceTag(tag); ok && !weak {
			m.tags = append(m.tags, t)
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

// parseDeviceTag parses the text of a device tag, accepting only the form
// String writes.
func parseDeviceTag(s string) (deviceTag, bool) {
	vs, cs, ok := strings.Cut(s, ".")
	if !ok {
		return deviceTag{}, false
	}
	v, err1 := strconv.ParseInt(vs, 10, 64)
	c, err2 := strconv.ParseInt(cs, 10, 64)
	t := deviceTag{version: v, created: c}
	if err1 != nil || err2 != nil || v <= 0 || t.String() != s {
		return deviceTag{}, false
	}
	return t, true
}

// etag returns the strong entity tag of a stored device.
func etag(d secrets.Device) string {
	return `"` + tagOf(d).String() + `"`
}
