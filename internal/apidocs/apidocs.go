// Package apidocs holds the API reference page, openapi.yaml rendered by
// Redoc into one self-contained HTML file at `go generate` time, and the
// Content-Security-Policy it is served with.
package apidocs

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"regexp"
	"strings"
)

//go:generate ../../scripts/api-docs.sh ../../openapi.yaml openapi.html

// HTML is the page (internal/apidocs/openapi.html), generated from
// openapi.yaml by scripts/api-docs.sh.
//
//go:embed openapi.html
var HTML []byte

// CSP is the Content-Security-Policy for HTML: its inline scripts, by their
// SHA-256, and nothing else; the search index's worker, which Redoc starts
// from a blob: URL its own script made; inline styles (Redoc's
// styled-components write them at run time, so they cannot be listed by
// hash) and data: images and fonts. Nothing may be fetched, framed,
// submitted or loaded from the network (Redoc's "API docs by Redocly" logo,
// an image on a CDN, is refused and not shown), so the page reads the same
// offline and cannot be made to run another script.
var CSP = policy(HTML)

// inlineScript matches an inline script as an HTML parser reads it: the
// element ends at the first "</script", whatever the script contains.
var inlineScript = regexp.MustCompile(`(?is)<script\b[^>]*>(.*?)</script`)

func policy(page []byte) string {
	var hashes []string
	for _, m := range inlineScript.FindAllSubmatch(page, -1) {
		sum := sha256.Sum256(m[1])
		hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src " + strings.Join(hashes, " "),
		"worker-src blob:",
		"style-src 'unsafe-inline'",
		"img-src data:",
		"font-src data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}
