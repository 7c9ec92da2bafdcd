#!/usr/bin/env bash
# release-tools.sh builds the release tools from the Go module proxy once and
# caches them: GoReleaser and cyclonedx-gomod (the SBOM generator
# .goreleaser.yaml calls). It prints the directory holding both on its last
# line of stdout, for PATH:
#
#   PATH="$(scripts/release-tools.sh | tail -n1):$PATH"
#
# Cache: ${CREDSIGN_CACHE:-$HOME/.cache/credsign}/release-tools-<versions>/.
# GoReleaser is a big build (several minutes on two cores); later runs reuse it.
set -euo pipefail

GORELEASER_VERSION=v2.17.0
CYCLONEDX_GOMOD_VERSION=v1.10.0

dir="${CREDSIGN_CACHE:-$HOME/.cache/credsign}/release-tools-goreleaser-$GORELEASER_VERSION-cyclonedx-gomod-$CYCLONEDX_GOMOD_VERSION"
mkdir -p "$dir"
export GOTOOLCHAIN=local
if [ ! -x "$dir/goreleaser" ]; then
	echo "release-tools.sh: building goreleaser $GORELEASER_VERSION (this takes several minutes)" >&2
	GOBIN="$dir" go install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION" >&2
fi
if [ ! -x "$dir/cyclonedx-gomod" ]; then
	echo "release-tools.sh: building cyclonedx-gomod $CYCLONEDX_GOMOD_VERSION" >&2
	GOBIN="$dir" go install "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$CYCLONEDX_GOMOD_VERSION" >&2
fi
echo "$dir"
