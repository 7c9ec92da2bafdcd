#!/usr/bin/env bash
# forged-enrolment-reads.sh [N] [file|vault]: how many store reads N forged
# enrolment tokens cost (issue #18 item 10). It builds credsign, starts it on
# the embedded store (file, the default) or on a dev Vault with a file audit
# device (vault: the Vault binary of scripts/vault.sh), makes a group and one
# real enrolment token, then sends N `POST /v1/enrol` with each of three
# forgeries: one unknown ID repeated, the real ID with a wrong text, and a new
# random ID each time. For each it prints the answers and the store reads:
# credsign's own count (credsign_store_operation_duration_seconds_count
# {op="get_key"}) and, on Vault, the KV reads of enrolment-token records in
# Vault's audit log. Expected: a repeated unknown ID or a wrong text costs one
# read per --cache-ttl, a new random ID one read each.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
N=${1:-500} STORE=${2:-file}
port=${PORT:-18190}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
go build -o "$work/credsign" ./cmd/credsign
export CREDSIGN_ADMIN_TOKEN=measure-admin-token-0123456789
URL=http://127.0.0.1:$port
AUDIT_LOG=
if [ "$STORE" = vault ]; then
	VAULT_BIN="${VAULT_BIN:-$(scripts/vault.sh | tail -n1)}"
	export VAULT_ADDR=http://127.0.0.1:$((port + 1)) VAULT_TOKEN=measure-root
	HOME=$work "$VAULT_BIN" server -dev -dev-root-token-id=$VAULT_TOKEN -dev-listen-address=127.0.0.1:$((port + 1)) -log-level=warn >"$work/vault.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do curl -fs -o /dev/null "$VAULT_ADDR/v1/sys/health" && break; sleep 0.2; done
	AUDIT_LOG=$work/audit.log
	curl -fsS -X PUT -H "X-Vault-Token: $VAULT_TOKEN" "$VAULT_ADDR/v1/sys/audit/file" -d "{\"type\":\"file\",\"options\":{\"file_path\":\"$AUDIT_LOG\"}}"
	"$work/credsign" serve --store vault --addr "127.0.0.1:$port" 2>"$work/serve.log" &
else
	"$work/credsign" serve --dev --addr "127.0.0.1:$port" --data-dir "$work/data" 2>"$work/serve.log" >/dev/null &
fi
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null && break; sleep 0.2; done
A="Authorization: Bearer $CREDSIGN_ADMIN_TOKEN"
KEY=$(head -c 64 /dev/urandom | base64 -w0)
curl -fsS -o /dev/null -X PUT "$URL/v1/groups/lamps" -H "$A" -H 'Content-Type: application/json' \
	-d "{\"cloud\":\"azure\",\"secret\":\"$KEY\",\"params\":{\"hubHost\":\"h.azure-devices.net\",\"deviceId\":\"{deviceId}\"}}"
ID=$(curl -fsS -X POST "$URL/v1/groups/lamps/enrolment-tokens" -H "$A" -H 'Content-Type: application/json' \
	-d '{"maxUses":2,"ttlSeconds":600}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
reads() { curl -fsS "$URL/metrics" | awk '/^credsign_store_operation_duration_seconds_count\{op="get_key"\}/{print $2}'; }
vreads() {
	[ -n "$AUDIT_LOG" ] || { echo 0; return; }
	grep '"type":"request"' "$AUDIT_LOG" | grep '"operation":"read"' | grep -c 'enrolment-token\.' || true
}
forge() { # $1: label, $2: how to make the i-th token text
	local before after codes vb va
	vb=$(vreads) before=$(reads)
	codes=$(for _ in $(seq "$N"); do curl -s -o /dev/null -w '%{http_code}\n' -X POST "$URL/v1/enrol" \
		-H "Authorization: Bearer $(eval "$2")" -H 'Content-Type: application/json' -d '{"deviceId":"x"}'; done | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
	after=$(reads) va=$(vreads)
	echo "$1: $N requests -> answers [$codes] store get_key reads: $((after - before)); Vault audit reads: $((va - vb))"
}
Z=$(printf '0%.0s' $(seq 64))
forge "one unknown ID, repeated" 'echo cse_0123456789abcdef0123.$Z'
forge "the real ID, wrong text" 'echo cse_$ID.$Z'
forge "a new random ID each" 'echo cse_$(head -c 10 /dev/urandom | od -An -tx1 | tr -d " \n").$Z'
