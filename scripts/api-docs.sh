#!/usr/bin/env bash
# api-docs.sh renders openapi.yaml as one self-contained HTML page with
# Redocly CLI's build-docs and fails if the page names anything to load from
# the network, so it reads offline. Run by `go generate ./internal/apidocs`
# (the page is embedded and served at /docs):
#
#   scripts/api-docs.sh SPEC OUT
#
# Redocly CLI 1.x, whose build-docs renders with Redoc 2: one page with every
# operation laid out (Redoc 3, from CLI 2.x, shows one tag at a time, behind
# client-side routes the server would have to answer). Its page loads Redoc's
# script from a CDN; the same file, from the redoc package the CLI installed
# (the version the page names, checked), is put inline instead, and Google
# Fonts are turned off (--disableGoogleFont: the system's fonts are used).
set -euo pipefail
spec=${1:?usage: api-docs.sh SPEC OUT}
out=${2:?usage: api-docs.sh SPEC OUT}
here="$(cd "$(dirname "$0")" && pwd)"
redocly="$("$here/redocly.sh" 1.34.20 | tail -n1)"
tmp="$out.tmp"
trap 'rm -f "$tmp"' EXIT
# redocly.yaml (beside the spec) is the lint configuration; build-docs
# reads its openapi options only, of which it sets none.
if ! log="$(REDOCLY_TELEMETRY=off "$redocly" build-docs "$spec" --disableGoogleFont \
	--title "credsign API" -o "$tmp" 2>&1)"; then
	echo "$log" >&2
	exit 1
fi
REDOC_DIR="$(dirname "$redocly")/../redoc" node - "$tmp" <<'JS'
const fs = require('fs');
const path = require('path');
const file = process.argv[2];
const dir = process.env.REDOC_DIR;
const version = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
const tag = `<script src="https://cdn.redocly.com/redoc/v${version}/bundles/redoc.standalone.js"></script>`;
const page = fs.readFileSync(file, 'utf8');
const at = page.indexOf(tag);
if (at < 0 || page.indexOf(tag, at + 1) >= 0) {
	console.error(`api-docs.sh: the page does not load Redoc ${version} from the CDN exactly once; cannot inline it`);
	process.exit(1);
}
const bundle = fs.readFileSync(path.join(dir, 'bundles', 'redoc.standalone.js'), 'utf8');
if (/<\/script/i.test(bundle)) {
	console.error('api-docs.sh: redoc.standalone.js contains "</script" and cannot be inlined');
	process.exit(1);
}
fs.writeFileSync(file, page.slice(0, at) + '<script>' + bundle + '</script>' + page.slice(at + tag.length));
JS
# Resources the browser would fetch by itself: script/img/iframe src, link
# href (stylesheets, preloads, icons); CSS url() and @import (lower case:
# the script's `new URL(...)` calls are not fetches).
if grep -oiE '<(script|img|iframe|source|link)\b[^>]*\b(src|href)="(https?:)?//[^"]*"' "$tmp" ||
	grep -oE '\burl\((["'\'']?)(https?:)?//[^)]*\)|@import[[:space:]]*(url\(|["'\''])' "$tmp"; then
	echo "api-docs.sh: $out would load the above from the network" >&2
	exit 1
fi
mv "$tmp" "$out"
