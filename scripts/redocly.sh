#!/usr/bin/env bash
# redocly.sh installs Redocly CLI (pinned) from npm once into the cache and
# prints the path of its executable on its last line of stdout, so callers
# (lint-openapi.sh, api-docs.sh) share installs and later runs work offline:
#
#   redocly=$(scripts/redocly.sh [VERSION] | tail -n1)
#
# VERSION is 2.77.0 (the linter) unless given; api-docs.sh asks for 1.34.20,
# whose build-docs renders with Redoc 2.
#
# Cache: ${CREDSIGN_CACHE:-$HOME/.cache/credsign}/npm-redocly-<version>.
set -euo pipefail

REDOCLY_VERSION=${1:-2.77.0}
npm_dir="${CREDSIGN_CACHE:-$HOME/.cache/credsign}/npm-redocly-$REDOCLY_VERSION"
if [ ! -x "$npm_dir/node_modules/.bin/redocly" ]; then
	command -v npm >/dev/null || { echo "redocly.sh: npm is needed to install @redocly/cli" >&2; exit 1; }
	mkdir -p "$npm_dir"
	npm install --prefix "$npm_dir" --no-audit --no-fund --silent "@redocly/cli@$REDOCLY_VERSION" >&2
fi
echo "$npm_dir/node_modules/.bin/redocly"
