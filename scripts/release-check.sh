#!/usr/bin/env bash
# release-check.sh proves the release builds and is reproducible: it runs
# GoReleaser's snapshot build (every archive and SBOM a tagged release would
# have, nothing published) of the current commit (HEAD: commit first) twice,
# in two fresh clones at different paths, and fails unless the two
# checksums.txt are the same, every file matches its checksum and every
# target is there. The tools are built once and cached (release-tools.sh).
#
#   scripts/release-check.sh [OUTDIR]     (default: a temporary directory)
#
# The two runs share Go's build and module caches: what differs between runs
# on one machine (times, paths, archive metadata, SBOM serials) is what this
# catches.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
PATH="$(scripts/release-tools.sh | tail -n1):$PATH"
export PATH
out=${1:-$(mktemp -d "${TMPDIR:-/tmp}/credsign-release.XXXXXX")}
mkdir -p "$out"

# The archives' names: one per build and target of .goreleaser.yaml (9).
want_archives=9
commit=$(git rev-parse HEAD)
for run in 1 2; do
	start=$(date +%s)
	src="$out/src-$run"
	rm -rf "$src" "${out:?}/dist-$run"
	git clone --quiet --no-checkout . "$src"
	git -C "$src" checkout --quiet "$commit"
	(cd "$src" && goreleaser release --snapshot --clean --skip=publish) >"$out/goreleaser-$run.log" 2>&1 || {
		tail -n 40 "$out/goreleaser-$run.log" >&2
		echo "release-check: goreleaser run $run failed (log: $out/goreleaser-$run.log)" >&2
		exit 1
	}
	mv "$src/dist" "$out/dist-$run"
	rm -rf "$src"
	echo "release-check: snapshot build $run of $commit took $(($(date +%s) - start))s"
	(cd "$out/dist-$run" && sha256sum --quiet -c checksums.txt) || {
		echo "release-check: run $run: a file does not match checksums.txt" >&2
		exit 1
	}
done

if ! cmp -s "$out/dist-1/checksums.txt" "$out/dist-2/checksums.txt"; then
	echo "release-check: two builds of one commit differ:" >&2
	diff "$out/dist-1/checksums.txt" "$out/dist-2/checksums.txt" >&2 || true
	exit 1
fi
archives=$(grep -c '\.tar\.gz$' "$out/dist-1/checksums.txt" || true)
sboms=$(grep -c '\.cdx\.json$' "$out/dist-1/checksums.txt" || true)
if [ "$archives" -ne "$want_archives" ] || [ "$sboms" -ne "$want_archives" ]; then
	echo "release-check: $archives archives and $sboms SBOMs in checksums.txt, want $want_archives of each:" >&2
	cat "$out/dist-1/checksums.txt" >&2
	exit 1
fi
echo "release-check: $archives archives and $sboms SBOMs, the same bytes in both builds:"
cat "$out/dist-1/checksums.txt"
