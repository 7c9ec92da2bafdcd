#!/usr/bin/env bash
# wrk.sh [DEVICES [DURATION]]: warm credential issuance under wrk (Debian's
# package) against a bare net/http handler answering the same bytes, on the
# same machine in the same run (#19's measure). Both servers get the same
# load: 2 threads, 32 connections, DEVICES (default 1000) aliyun devices on
# the embedded store, each with a device token, requests spread over them.
# Prints both rates and their ratio (credsign / bare), and each server's CPU
# time per request (user + system, from /proc/PID/stat) and that ratio
# (bare / credsign): on a shared machine the rates swing with what else
# runs, the CPU a request costs much less.
set -euo pipefail
NAME=wrk.sh
cd "$(dirname "$0")/.."
. scripts/lib.sh

devices="${1:-1000}"
duration="${2:-20s}"
command -v wrk >/dev/null || fail "wrk not found (apt-get install wrk)"

CGO_ENABLED=0 go build -o "$work/credsign" ./cmd/credsign
go build -o "$work/barehttp" ./internal/tools/barehttp

admin="csa_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$admin" >"$work/admin.token"
CREDSIGN_ADMIN_TOKEN="$admin" "$work/credsign" serve --addr 127.0.0.1:0 --data-dir "$work/data" \
	--rate-limit 0 --provisioner-rate-limit 0 2>"$work/credsign.log" &
pids+=($!)
credsign_pid=$!
wait_listening "$work/credsign.log"
base="http://$listen"

for i in $(seq "$devices"); do
	printf '{"id":"d-%d","cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"d-%d"},"secret":"0123456789abcdef0123456789abcdef"}\n' "$i" "$i"
done >"$work/batch.ndjson"
"$work/credsign" import --server "$base" --token-file "$work/admin.token" --tokens-out "$work/tokens.csv" "$work/batch.ndjson" >/dev/null

# One answer, for the baseline's body and to check the tokens work.
IFS=, read -r id tok < <(sed -n 2p "$work/tokens.csv")
curl --fail-with-body -sS -X POST "$base/v1/devices/$id/credentials" -H "Authorization: Bearer $tok" >"$work/answer.json"
"$work/barehttp" -addr 127.0.0.1:0 -body "$work/answer.json" >"$work/bare.out" &
pids+=($!)
bare_pid=$!
for _ in $(seq 100); do grep -q listening "$work/bare.out" && break; sleep 0.1; done
bare="http://$(sed -n 's/^listening //p' "$work/bare.out")"

cat >"$work/creds.lua" <<LUA
local ids, toks, i = {}, {}, 0
for line in io.lines("$work/tokens.csv") do
  local id, tok = line:match("^([^,]+),(.+)$")
  if id and id ~= "id" then ids[#ids+1] = id; toks[#toks+1] = tok end
end
request = function()
  i = i % #ids + 1
  return wrk.format("POST", "/v1/devices/" .. ids[i] .. "/credentials", {["Authorization"] = "Bearer " .. toks[i]})
end
done = function(summary, latency, requests)
  io.write(string.format("non2xx %d errors %d\n", summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

rate() { sed -n 's/^Requests\/sec: *//p'; }
# cpu PID: the process's user + system time so far, in clock ticks.
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# run PID URL FILE: one wrk run; prints "rate µs-of-server-CPU-per-request".
run() {
	local before after
	before=$(cpu "$1")
	wrk -t2 -c32 -d"$duration" -s "$work/creds.lua" "$2" >"$3"
	after=$(cpu "$1")
	awk -v r="$(rate <"$3")" -v d="$duration" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
		'BEGIN { sub(/s$/, "", d); printf "%s %.1f\n", r, t / hz * 1e6 / (r * d) }'
}
wrk -t2 -c32 -d5s -s "$work/creds.lua" "$base" >/dev/null   # warm the cache and the JIT-free paths
read -r c ccpu < <(run "$credsign_pid" "$base" "$work/c.txt")
read -r b bcpu < <(run "$bare_pid" "$bare" "$work/b.txt")
grep -q "non2xx 0 errors 0" "$work/c.txt" || { cat "$work/c.txt"; fail "credsign answered errors"; }
echo "credsign $c/s, bare net/http $b/s, ratio $(awk -v c="$c" -v b="$b" 'BEGIN { printf "%.2f", c / b }'); CPU per request credsign ${ccpu} µs, bare ${bcpu} µs, ratio $(awk -v c="$ccpu" -v b="$bcpu" 'BEGIN { printf "%.2f", b / c }')"
