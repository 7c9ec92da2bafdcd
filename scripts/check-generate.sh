#!/usr/bin/env bash
# check-generate.sh regenerates every package with a //go:generate line
# (the oapi-codegen server in api/oapi, the clients, the /docs page in
# internal/apidocs, all from openapi.yaml) and fails if the result differs
# from what is committed: generated code must always match the contract.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

mapfile -t dirs < <(git ls-files '*.go' | xargs grep -l '^//go:generate ' | xargs -n1 dirname | sort -u)
if [ "${#dirs[@]}" -eq 0 ]; then
	echo "check-generate: no //go:generate directives"; exit 0
fi
for d in "${dirs[@]}"; do
	echo "go generate ./$d"
	go generate "./$d"
done
changes="$(git status --porcelain -- "${dirs[@]}")"
if [ -n "$changes" ]; then
	echo "check-generate: generated code is out of date with openapi.yaml; run go generate and commit:"
	echo "$changes"
	git --no-pager diff --stat -- "${dirs[@]}"
	exit 1
fi
echo "check-generate: generated code is up to date"
