#!/usr/bin/env bash
# load.sh starts `credsign serve --dev` on a free loopback port with a fresh
# data directory and rate limiting off, runs credsign-load against it, and
# stops it. Extra arguments go to credsign-load (e.g. --concurrency 16).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
NAME=load.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
go build -o "$work/" ./cmd/credsign ./cmd/credsign-load
export CREDSIGN_ADMIN_TOKEN="csa_load_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"$work/credsign" serve --dev --addr 127.0.0.1:0 --data-dir "$work/data" --rate-limit 0 2>"$work/log" &
pids+=($!)
wait_listening "$work/log"
"$work/credsign-load" --server "http://$listen" "$@"
