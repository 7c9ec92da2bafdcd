#!/usr/bin/env bash
# openapi-typescript.sh installs openapi-typescript and the TypeScript
# compiler (pinned) from npm once into the cache and prints the directory
# whose node_modules/.bin holds openapi-typescript and tsc on its last line
# of stdout; later runs work offline. internal/apiclient's test generates
# TypeScript types from the served contract with them and type-checks an
# example (a jwt device with claims).
#
# Cache: ${CREDSIGN_CACHE:-$HOME/.cache/credsign}/npm-openapi-typescript-<version>-ts-<version>.
set -euo pipefail

OTS_VERSION=7.13.0
TS_VERSION=5.9.3
npm_dir="${CREDSIGN_CACHE:-$HOME/.cache/credsign}/npm-openapi-typescript-$OTS_VERSION-ts-$TS_VERSION"
if [ ! -x "$npm_dir/node_modules/.bin/openapi-typescript" ] || [ ! -x "$npm_dir/node_modules/.bin/tsc" ]; then
	command -v npm >/dev/null || { echo "openapi-typescript.sh: npm is needed to install openapi-typescript" >&2; exit 1; }
	mkdir -p "$npm_dir"
	npm install --prefix "$npm_dir" --no-audit --no-fund --silent "openapi-typescript@$OTS_VERSION" "typescript@$TS_VERSION" >&2
fi
echo "$npm_dir"
