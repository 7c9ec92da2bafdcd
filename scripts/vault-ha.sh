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
# shellcheck source=scripts/vault-lib.sh
. scripts/vault-lib.sh

# Raft timing: 1 is what HashiCorp recommends for production servers; Vault's
# default (0, meaning 5) is for slow development machines and makes the
# election after a leader dies about five times slower.
start_cluster v "${VAULT_RAFT_PERFORMANCE_MULTIPLIER:-1}"
token="$(credsign_token v 1h)"
# The node that is active now (usually v0, which was initialised first;
# under load leadership may already have moved) is the one to kill.
active="$(wait_active v0 v1 v2)"
others=()
for n in v0 v1 v2; do [ "$n" = "$active" ] || others+=("$n"); done
echo "vault-ha.sh: Vault 1.13 Raft cluster up: $(addr "$active") (active), $(addr "${others[0]}"), $(addr "${others[1]}")" >&2

# Two credsign replicas, on the standbys.
go build -o "$work/" ./cmd/credsign ./scripts/vaultha
export CREDSIGN_ADMIN_TOKEN="csa_vaultha_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
servers=""
for r in 0 1; do
	CREDSIGN_VAULT_TIMEOUT="${CREDSIGN_VAULT_TIMEOUT:-10s}" start_credsign "${others[$r]}" "$token" "credsign$r.log"
	servers="${servers:+$servers,}$srv"
done
echo "vault-ha.sh: credsign replicas: $servers" >&2

[ "$(wait_active v0 v1 v2)" = "$active" ] || fail "leadership moved from $active while the replicas started; run again"
echo "vault-ha.sh: the active node is $active (pid ${vpid[$active]}); killing it under load" >&2
set +e
"$work/vaultha" -servers "$servers" -kill "kill -9 ${vpid[$active]}; date +%s.%N > $work/killed" "$@" > "$work/report.json" &
driver=$!
# The election, timed from the kill.
while [ ! -s "$work/killed" ] && kill -0 "$driver" 2>/dev/null; do sleep 0.05; done
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
for secret in "$token" "$root_v" "$unseal_v" "$CREDSIGN_ADMIN_TOKEN"; do
	if grep -qF -- "$secret" "$work"/credsign*.log; then fail "a secret is in a credsign log"; fi
done
# Any minted token: the prefixes of service.TokenKinds (csa_ csp_ csd_ cse_).
if grep -qE 'cs[apde]_[0-9a-f]' "$work"/credsign*.log; then fail "a token is in a credsign log"; fi
[ "$rc" = 0 ] || fail "vaultha exited $rc (lost writes or no recovery: see the report above)"
echo "vault-ha.sh: ok"
