#!/usr/bin/env bash
# hostile-bench.sh WHAT N [VALUES] [serve flags...]: the cost of refusing
# hostile bodies (issue #18 item 1), measured from the server's /proc.
#
#   WHAT    import: one POST /v1/imports of N lines of VALUES values each
#           put:    N concurrent PUT /v1/devices/{id} of VALUES values each
#           putok:  N concurrent normal PUTs (the baseline)
#   VALUES  JSON values a document holds (default 6200; the cap is 1,024)
#
# It builds credsign, starts `serve --dev --rate-limit 0` on a fresh data
# directory (port $PORT, default 18123) and runs internal/tools/hostilebench
# against it, which prints the statuses, the wall time, the server's peak
# RSS (VmHWM) before and after and its CPU time per request. SHAPE=zzz sends
# arrays under an unknown member instead of objects as param values.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
what=${1:?usage: hostile-bench.sh import|put|putok N [VALUES] [serve flags...]}
n=${2:?usage: hostile-bench.sh import|put|putok N [VALUES] [serve flags...]}
values=${3:-6200}
shift $(( $# < 3 ? $# : 3 ))
port=${PORT:-18123}
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; wait "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/credsign" ./cmd/credsign
go build -o "$work/hostilebench" ./internal/tools/hostilebench
(cd "$work" && exec ./credsign serve --dev --data-dir "$work/data" --addr "127.0.0.1:$port" --rate-limit 0 "$@" >"$work/out" 2>"$work/log") &
pid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.3; done
CREDSIGN_TOKEN=$(grep -o 'export CREDSIGN_ADMIN_TOKEN=[^ ]*' "$work/out" | cut -d= -f2- | tr -d "'\"")
export CREDSIGN_TOKEN
"$work/hostilebench" -url "http://127.0.0.1:$port" -pid "$pid" -what "$what" -n "$n" -members "$values" -shape "${SHAPE:-params}"
