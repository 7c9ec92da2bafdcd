#!/usr/bin/env bash
# bootstorm.sh runs a boot storm (credsign-load --storm) against
# `credsign serve` on a free loopback port: first on the embedded store (a
# fresh data directory), then, when VAULT_ADDR and VAULT_TOKEN are set, with
# --store vault on that Vault (which also gives the Vault KV GET baseline).
# Rate limiting is off so that what is measured is the server, not the
# limiter. Usage: scripts/bootstorm.sh [DEVICES [CONCURRENCY]] (default
# 20000 devices, 256 concurrent).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
NAME=bootstorm.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
devices="${1:-20000}"
conc="${2:-256}"
go build -o "$work/" ./cmd/credsign ./cmd/credsign-load
export CREDSIGN_ADMIN_TOKEN="csa_storm_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# storm STORE: start the server on STORE, run the storm, stop the server.
storm() {
	local store="$1" log="$work/log-$1"
	"$work/credsign" serve --addr 127.0.0.1:0 --store "$store" --data-dir "$work/data-$store" \
		--rate-limit 0 --provisioner-rate-limit 0 2>"$log" >/dev/null &
	pids+=($!)
	wait_listening "$log"
	echo "== credsign serve --store $store: $devices devices, $conc concurrent"
	"$work/credsign-load" --server "http://$listen" --storm "$devices" --storm-concurrency "$conc"
	kill "${pids[-1]}"
	wait "${pids[-1]}" 2>/dev/null || true
}

storm file
if [ -n "${VAULT_ADDR:-}" ] && [ -n "${VAULT_TOKEN:-}" ]; then
	storm vault
fi
