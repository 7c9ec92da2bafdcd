#!/usr/bin/env bash
# lint-openapi.sh checks openapi.yaml: it must load and validate as OpenAPI
# 3.0.3 with kin-openapi (examples included), and follow the project's rules
# (every operation has an operationId, summary and tag; every failure it can
# produce is declared as problem JSON). The rules are the tests in
# openapi_test.go.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
go test -count=1 -run '^TestOpenAPI' .

# A mainstream linter too: Redocly CLI's "recommended" rules, with the rules
# turned off named and justified in redocly.yaml. Installed once from npm
# into the cache (pinned), so later runs work offline.
REDOCLY_VERSION=2.77.0
npm_dir="${CREDSIGN_CACHE:-$HOME/.cache/credsign}/npm-redocly-$REDOCLY_VERSION"
if [ ! -x "$npm_dir/node_modules/.bin/redocly" ]; then
	command -v npm >/dev/null || { echo "lint-openapi.sh: npm is needed to install @redocly/cli"; exit 1; }
	mkdir -p "$npm_dir"
	npm install --prefix "$npm_dir" --no-audit --no-fund --silent "@redocly/cli@$REDOCLY_VERSION" >/dev/null
fi
REDOCLY_TELEMETRY=off "$npm_dir/node_modules/.bin/redocly" lint --config redocly.yaml --format=summary openapi.yaml 2>&1 | grep -v '^ *[╔║╚]'
