#!/usr/bin/env bash
# vault-snapshot.sh: the Vault backup procedure of docs/operations.md, for
# real, on loopback: a Raft snapshot saved under load, restored into a fresh
# cluster, and every device issuing there with the token it had.
#
#   scripts/vault-snapshot.sh [DEVICES]   (default 2000)
#
# It starts a three-node Vault 1.13 cluster with integrated (Raft) storage
# (the binary of scripts/vault.sh), installs deployments/vault/credsign-policy.hcl
# and gives credsign a periodic token with it, registers DEVICES devices with
# their tokens, then runs credsign-load (issuance) and a writer (new devices)
# against the server while `vault operator raft snapshot save` runs on the
# active node. It starts a second, fresh three-node cluster, restores the
# snapshot into it (`snapshot restore -force`: the snapshot brings the first
# cluster's keyring, so the nodes are unsealed with the first cluster's key),
# starts credsign on it with the same Vault token (it is in the snapshot), and
# asks for credentials with every device's token. It exits 1 if the load saw
# an error while the snapshot was saved, if a device acknowledged before the
# save is missing, or if any device does not issue. Everything listens on
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
NAME=vault-snapshot.sh
# shellcheck source=scripts/vault-lib.sh
. scripts/vault-lib.sh
devices="${1:-2000}"

go build -o "$work/" ./cmd/credsign ./cmd/credsign-load
start_cluster a
token="$(credsign_token a 24h)"
echo "vault-snapshot.sh: cluster a up: $(addr a0) $(addr a1) $(addr a2)" >&2

export CREDSIGN_ADMIN_TOKEN="csa_snapshot_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
start_credsign a1 "$token" credsign-a.log
for i in $(seq -f '%06g' 1 "$devices"); do
	echo '{"id":"dev-'"$i"'","cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"dev-'"$i"'"},"secret":"0123456789abcdef0123456789a'"$i"'"}'
done > "$work/devices.ndjson"
CREDSIGN_TOKEN="$CREDSIGN_ADMIN_TOKEN" "$work/credsign" import --server "$srv" --tokens-out "$work/tokens.csv" "$work/devices.ndjson" >&2

# The load: issuance (credsign-load) and a writer of new devices, which
# logs each device it got 201 for.
"$work/credsign-load" --server "$srv" --phase 3s --rounds 2 >"$work/load.txt" 2>&1 &
load=$!
(
	i=0
	while [ ! -e "$work/stop" ]; do
		i=$((i + 1))
		code="$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$srv/v1/devices/w-$i" -H "Authorization: Bearer $CREDSIGN_ADMIN_TOKEN" \
			-H 'Content-Type: application/json' -d '{"cloud":"huawei","params":{"deviceId":"w'"$i"'"},"secret":"12345678"}')"
		echo "$(date +%s%N) $i $code"
	done > "$work/writes.txt"
) &
writer=$!
sleep 4
active="$(wait_active a0 a1 a2)"
started="$(date +%s%N)"
VAULT_TOKEN="$root_a" v "$active" operator raft snapshot save "$work/credsign.snap"
saved="$(date +%s%N)"
echo "vault-snapshot.sh: snapshot saved on $active in $(( (saved - started) / 1000000 )) ms, $(stat -c %s "$work/credsign.snap") bytes, under load" >&2
wait "$load"
touch "$work/stop"
wait "$writer"
cat "$work/load.txt"
werr="$(awk '$3 != 201' "$work/writes.txt" | wc -l)"
echo "vault-snapshot.sh: writer: $(wc -l < "$work/writes.txt") writes, $werr failed" >&2
lerr="$(grep -o 'errors [0-9]*' "$work/load.txt" | awk '{ s += $2 } END { print s + 0 }')"
[ "$werr" = 0 ] && [ "$lerr" = 0 ] || fail "the load saw $lerr issuance and $werr write errors while the snapshot was saved"
# Writes acknowledged before the save began must be in the snapshot.
before="$(awk -v t="$started" '$1 < t && $3 == 201 { n = $2 } END { print n + 0 }' "$work/writes.txt")"

start_cluster b
active="$(wait_active b0 b1 b2)"
VAULT_TOKEN="$root_b" v "$active" operator raft snapshot restore -force "$work/credsign.snap"
# The restored keyring is cluster a's: unseal every node with a's key.
for _ in $(seq 50); do
	for n in b0 b1 b2; do
		[ "$(health "$n")" = 503 ] && v "$n" operator unseal "$unseal_a" >/dev/null 2>&1 || true
	done
	wait_active b0 b1 b2 >/dev/null 2>&1 && break
done
active="$(wait_active b0 b1 b2)" || fail "cluster b did not come back after the restore"
echo "vault-snapshot.sh: restored into cluster b, active node $active" >&2

start_credsign "$active" "$token" credsign-b.log
ok=0 bad=0
while IFS=, read -r id tok; do
	[ "$id" = id ] && continue
	code="$(curl -s -o /dev/null -w '%{http_code}' -X POST "$srv/v1/devices/$id/credentials" -H "Authorization: Bearer $tok")"
	if [ "$code" = 200 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
done < "$work/tokens.csv"
missing=0
for i in $(seq 1 "$before"); do
	code="$(curl -s -o /dev/null -w '%{http_code}' "$srv/v1/devices/w-$i" -H "Authorization: Bearer $CREDSIGN_ADMIN_TOKEN")"
	[ "$code" = 200 ] || missing=$((missing + 1))
done
echo "vault-snapshot.sh: on the restored cluster: $ok devices issued, $bad failed; $before writes acknowledged before the save, $missing missing" >&2
for secret in "$token" "$root_a" "$root_b" "$unseal_a" "$CREDSIGN_ADMIN_TOKEN"; do
	if grep -qF -- "$secret" "$work"/credsign-*.log; then fail "a secret is in a credsign log"; fi
done
[ "$bad" = 0 ] && [ "$ok" = "$devices" ] && [ "$missing" = 0 ] || fail "devices or writes lost in the restore"
echo "vault-snapshot.sh: ok"
