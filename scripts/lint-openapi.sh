#!/usr/bin/env bash
# lint-openapi.sh checks openapi.yaml: it must load and validate as OpenAPI
# 3.0.3 with kin-openapi (examples included), and follow the project's rules
# (every operation has an operationId, summary and tag; every failure it can
# produce is problem JSON, through its default response). The rules are the
# tests in openapi_test.go.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
go test -count=1 -run '^TestOpenAPI' .

# A mainstream linter too: Redocly CLI's "recommended" rules, with the rules
# turned off named and justified in redocly.yaml. Installed once from npm
# into the cache (pinned, scripts/redocly.sh), so later runs work offline.
redocly="$(scripts/redocly.sh | tail -n1)"
REDOCLY_TELEMETRY=off "$redocly" lint --config redocly.yaml --format=summary openapi.yaml 2>&1 | grep -v '^ *[╔║╚]'
