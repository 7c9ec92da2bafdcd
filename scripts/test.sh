#!/usr/bin/env bash
# test.sh runs every check CI runs: gofmt, go vet, staticcheck, the OpenAPI
# lint and generate check, and go test -race over the whole module against a
# real Vault (built once from the Go module proxy and cached, see vault.sh)
# and Debian's mosquitto when installed.
#
# CREDSIGN_REQUIRE_VAULT=1 / CREDSIGN_REQUIRE_MOSQUITTO=1 turn the skips of
# tests that need those servers into failures (CI sets both).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "vault binary"
VAULT_BIN="${VAULT_BIN:-$(scripts/vault.sh | tail -n1)}"
export VAULT_BIN
echo "$VAULT_BIN"

step "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go') 2>&1 || true)"
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go mod tidy"
# The module files must be what `go mod tidy` writes: no missing or stray
# requirements, direct ones not marked indirect.
tidy_before="$(cat go.mod go.sum | sha256sum)"
go mod tidy
if [ "$(cat go.mod go.sum | sha256sum)" != "$tidy_before" ]; then
	echo "go mod tidy changed go.mod/go.sum; run it and commit:"; git --no-pager diff -- go.mod go.sum; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

for s in scripts/lint-openapi.sh scripts/check-generate.sh; do
	if [ -x "$s" ]; then
		step "$s"
		"$s"
	fi
done

step "go test -race"
go test -race -count=1 -timeout 30m ./...
