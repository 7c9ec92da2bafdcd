#!/usr/bin/env bash
# Cross-compiles the device agent (CGO off, stripped) for the boards it is
# meant for and reports each binary's size; fails if a build fails, if the
# agent pulls in server or Vault code, or if a binary reaches 10 MB.
#   scripts/cross-agent.sh [OUTDIR]     (default: bin/cross)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/cross}
mkdir -p "$out"

if go list -deps ./cmd/credsign-agent | grep -E 'vault|credsign/(api|secrets|service|cloud)'; then
	echo "cross-agent: credsign-agent must not import Vault or server code (above)" >&2
	exit 1
fi

limit=$((10 * 1024 * 1024))
status=0
# The boards are the release's (.goreleaser.yaml, between the agent-targets
# markers), as GoReleaser writes them: GOOS_GOARCH_VARIANT, the variant being
# GOAMD64, GOARM, GOARM64, GOMIPS or GORISCV64 by architecture.
mapfile -t targets < <(sed -n '/# agent-targets begin/,/# agent-targets end/s/^ *- *\([a-z0-9_.]*\) *$/\1/p' .goreleaser.yaml)
if [ "${#targets[@]}" -eq 0 ]; then
	echo "cross-agent: no agent targets in .goreleaser.yaml" >&2
	exit 1
fi
for t in "${targets[@]}"; do
	IFS=_ read -r goos goarch variant <<<"$t"
	target="$goos/$goarch${variant:+/$variant}"
	unset GOAMD64 GOARM GOARM64 GOMIPS GORISCV64
	case $goarch in
	amd64) export GOAMD64=$variant ;;
	arm) export GOARM=$variant ;;
	arm64) export GOARM64=$variant ;;
	mips | mipsle) export GOMIPS=$variant ;;
	riscv64) export GORISCV64=$variant ;;
	esac
	name="credsign-agent-$goos-$goarch"
	[ "$goarch" = arm ] && name+="v$variant"
	if ! CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch \
		go build -trimpath -ldflags='-s -w' -o "$out/$name" ./cmd/credsign-agent; then
		echo "FAIL $target: build failed" >&2
		status=1
		continue
	fi
	size=$(wc -c <"$out/$name")
	if ((size >= limit)); then
		echo "FAIL $target: $name is $size bytes (limit $limit)" >&2
		status=1
	else
		awk -v t="$target" -v n="$name" -v s="$size" 'BEGIN { printf "ok   %-14s %s %d bytes (%.1f MiB)\n", t, n, s, s / 1048576 }'
	fi
done
exit $status
