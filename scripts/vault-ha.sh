#!/usr/bin/env bash
# vault-ha.sh: credsign through a Vault failover, for real, on loopback.
#
#   scripts/vault-ha.sh [vaultha flags, e.g. -rate 100 -duration 60s]
#
# VAULT_RAFT_PERFORMANCE_MULTIPLIER (default 1) sets Raft's timing.
# It starts a three-node Vault 1.13 cluster with integrated (Raft) storage
# (the binary of scripts/vault.sh), initialises and unseals it, mounts KV v2
# at secret/, installs deployments/vault/credsign-policy.hcl and gives
# credsign a periodic token with that policy. Two credsign replicas run
# against the two standby nodes (which forward to the active node, as a
# load balancer in front of Vault would send them anywhere). scripts/vaultha
# then keeps a steady issuance and write load on both replicas, kills the
# active Vault node with SIGKILL, and reports the gap, the errors, the
# recovery time and whether an acknowledged write was lost (exit 1 if so,
# if the service did not recover, or if more credential requests failed than
# -max-errors allows: CI gives 0, since the replicas' cache must carry
# issuance through the election). Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
NAME=vault-ha.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
command -v jq >/dev/null || fail "jq is not installed"
command -v curl >/dev/null || fail "curl is not installed"
VAULT_BIN="${VAULT_BIN:-$(scripts/vault.sh | tail -n1)}"

# Six free loopback ports: an API and a cluster port per node.
api=() cl=()
for n in 0 1 2; do
	free_port; api[n]=$port
	free_port; cl[n]=$port
done

# Raft timing: 1 is what HashiCorp recommends for production servers; Vault's
# default (0, meaning 5) is for slow development machines and makes the
# election after a leader dies about five times slower.
multiplier="${VAULT_RAFT_PERFORMANCE_MULTIPLIER:-1}"
for n in 0 1 2; do
	mkdir -p "$work/v$n"
	cat > "$work/v$n.hcl" <<EOF
storage "raft" {
  path    = "$work/v$n"
  node_id = "v$n"
  performance_multiplier = $multiplier
}
listener "tcp" {
  address         = "127.0.0.1:${api[n]}"
  cluster_address = "127.0.0.1:${cl[n]}"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:${api[n]}"
cluster_addr  = "https://127.0.0.1:${cl[n]}"
disable_mlock = true
EOF
	"$VAULT_BIN" server -config="$work/v$n.hcl" -log-level=warn >"$work/v$n.log" 2>&1 &
	pids+=($!)
	vpid[n]=$!
done
addr() { echo "http://127.0.0.1:${api[$1]}"; }
v() { local n=$1; shift; VAULT_ADDR="$(addr "$n")" "$VAULT_BIN" "$@"; }
for n in 0 1 2; do
	for _ in $(seq 100); do
		curl -s -o /dev/null "$(addr "$n")/v1/sys/health" && break
		sleep 0.2
	done
	curl -s -o /dev/null "$(addr "$n")/v1/sys/health" || { cat "$work/v$n.log" >&2; fail "vault node $n did not start"; }
done

v 0 operator init -key-shares=1 -key-threshold=1 -format=json > "$work/init.json"
unseal="$(jq -r '.unseal_keys_b64[0]' "$work/init.json")"
root="$(jq -r '.root_token' "$work/init.json")"
v 0 operator unseal "$unseal" >/dev/null
wait_active() { # NODE...: until one of them is the active node; prints it
	for _ in $(seq 300); do
		for n in "$@"; do
			if [ "$(curl -s "$(addr "$n")/v1/sys/health" -o /dev/null -w '%{http_code}')" = 200 ]; then
				echo "$n"
				return 0
			fi
		done
		sleep 0.1
	done
	return 1
}
wait_active 0 >/dev/null || fail "node 0 did not become active"
for n in 1 2; do
	v "$n" operator raft join "$(addr 0)" >/dev/null
	v "$n" operator unseal "$unseal" >/dev/null
done
export VAULT_TOKEN="$root"
for _ in $(seq 100); do
	[ "$(v 0 operator raft list-peers -format=json 2>/dev/null | jq '[.data.config.servers[] | select(.voter)] | length')" = 3 ] && break
	sleep 0.2
done
[ "$(v 0 operator raft list-peers -format=json | jq '[.data.config.servers[] | select(.voter)] | length')" = 3 ] ||
	fail "the cluster did not reach three voters"
v 0 secrets enable -path=secret kv-v2 >/dev/null
v 0 policy write credsign deployments/vault/credsign-policy.hcl >/dev/null
token="$(v 0 token create -policy=credsign -no-default-policy -period=1h -field=token)"
unset VAULT_TOKEN
echo "vault-ha.sh: Vault 1.13 Raft cluster up: $(addr 0) (active), $(addr 1), $(addr 2)" >&2

# Two credsign replicas, on the standbys.
go build -o "$work/" ./cmd/credsign ./scripts/vaultha
export CREDSIGN_ADMIN_TOKEN="csa_vaultha_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
servers=""
for r in 0 1; do
	n=$((r + 1))
	VAULT_ADDR="$(addr "$n")" VAULT_TOKEN="$token" CREDSIGN_VAULT_TIMEOUT="${CREDSIGN_VAULT_TIMEOUT:-10s}" \
		"$work/credsign" serve --addr 127.0.0.1:0 --rate-limit 0 2>"$work/credsign$r.log" >/dev/null &
	pids+=($!)
	wait_listening "$work/credsign$r.log"
	a=$listen
	curl -sf "http://$a/readyz" >/dev/null || fail "credsign replica $r is not ready (Vault at $(addr "$n"))"
	servers="${servers:+$servers,}http://$a"
done
echo "vault-ha.sh: credsign replicas: $servers" >&2

active="$(wait_active 0 1 2)"
echo "vault-ha.sh: the active node is $active (pid ${vpid[active]}); killing it under load" >&2
set +e
"$work/vaultha" -servers "$servers" -kill "kill -9 ${vpid[active]}; date +%s.%N > $work/killed" "$@" > "$work/report.json" &
driver=$!
# The election, timed from the kill.
while [ ! -s "$work/killed" ] && kill -0 "$driver" 2>/dev/null; do sleep 0.05; done
others=()
for n in 0 1 2; do [ "$n" = "$active" ] || others+=("$n"); done
new="$(wait_active "${others[@]}")"
elected="$(date +%s.%N)"
wait "$driver"
rc=$?
set -e
cat "$work/report.json"
if [ -s "$work/killed" ] && [ -n "$new" ]; then
	echo "vault-ha.sh: node $new became active $(awk -v a="$(cat "$work/killed")" -v b="$elected" 'BEGIN { printf "%.2f", b - a }') s after the kill"
fi
errs="$(cat "$work"/credsign*.log | grep -c '"level":"error"' || true)"
echo "vault-ha.sh: error log lines of the replicas: $errs; messages: $(cat "$work"/credsign*.log |
	grep '"level":"error"' | sed -n 's/.*"message":"\([^"]*\)".*/\1/p' | sort | uniq -c | tr -s ' \n' ' ')"
# No secret in any log, outage or not.
for secret in "$token" "$root" "$unseal" "$CREDSIGN_ADMIN_TOKEN"; do
	if grep -qF -- "$secret" "$work"/credsign*.log; then fail "a secret is in a credsign log"; fi
done
# Any minted token: the prefixes of service.TokenKinds (csa_ csp_ csd_ cse_).
if grep -qE 'cs[apde]_[0-9a-f]' "$work"/credsign*.log; then fail "a token is in a credsign log"; fi
[ "$rc" = 0 ] || fail "vaultha exited $rc (lost writes or no recovery: see the report above)"
echo "vault-ha.sh: ok"
