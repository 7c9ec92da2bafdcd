# vault-lib.sh: a Vault 1.13 Raft cluster on loopback and credsign on it,
# for vault-ha.sh and vault-snapshot.sh. Source it, from the repository's
# root, after setting NAME as lib.sh (which it sources) wants:
#
#   NAME=vault-ha.sh; . scripts/vault-lib.sh
#
# Besides what lib.sh gives, it checks for jq and curl, sets VAULT_BIN (the
# binary of scripts/vault.sh unless set), and gives start_cluster,
# credsign_token, start_credsign and, for a node named as start_cluster
# names them (a0, a1, ...), addr, v, health and wait_active.

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

command -v jq >/dev/null || fail "jq is not installed"
command -v curl >/dev/null || fail "curl is not installed"
VAULT_BIN="${VAULT_BIN:-$(scripts/vault.sh | tail -n1)}"

declare -A api vpid # NODE: its API port, its process
addr() { echo "http://127.0.0.1:${api[$1]}"; } # NODE
v() { local n=$1; shift; VAULT_ADDR="$(addr "$n")" "$VAULT_BIN" "$@"; } # NODE vault-args...
health() { curl -s -o /dev/null -w '%{http_code}' "$(addr "$1")/v1/sys/health"; } # NODE
wait_active() { # NODE...: until one of them is the active node; prints it
	for _ in $(seq 300); do
		for n in "$@"; do
			if [ "$(health "$n")" = 200 ]; then echo "$n"; return 0; fi
		done
		sleep 0.1
	done
	return 1
}

# start_cluster C [MULTIPLIER]: three Raft nodes C0 C1 C2 on free ports,
# initialised (one key share), unsealed and joined into three voters; sets
# unseal_C and root_C. MULTIPLIER is Raft's performance_multiplier
# (default 1, what HashiCorp recommends for production servers).
start_cluster() {
	local c=$1 multiplier=${2:-1} n
	for n in 0 1 2; do
		free_port; api[$c$n]=$port
		free_port; local cl=$port
		mkdir -p "$work/$c$n"
		cat > "$work/$c$n.hcl" <<EOF
storage "raft" {
  path    = "$work/$c$n"
  node_id = "$c$n"
  performance_multiplier = $multiplier
}
listener "tcp" {
  address         = "127.0.0.1:${api[$c$n]}"
  cluster_address = "127.0.0.1:$cl"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:${api[$c$n]}"
cluster_addr  = "https://127.0.0.1:$cl"
disable_mlock = true
EOF
		"$VAULT_BIN" server -config="$work/$c$n.hcl" -log-level=warn >"$work/$c$n.log" 2>&1 &
		pids+=($!)
		vpid[$c$n]=$!
	done
	for n in 0 1 2; do
		for _ in $(seq 100); do [ "$(health "$c$n")" != 000 ] && break; sleep 0.2; done
		[ "$(health "$c$n")" != 000 ] || { cat "$work/$c$n.log" >&2; fail "vault node $c$n did not start"; }
	done
	v "${c}0" operator init -key-shares=1 -key-threshold=1 -format=json > "$work/init-$c.json"
	printf -v "unseal_$c" '%s' "$(jq -r '.unseal_keys_b64[0]' "$work/init-$c.json")"
	printf -v "root_$c" '%s' "$(jq -r '.root_token' "$work/init-$c.json")"
	local key="unseal_$c"
	v "${c}0" operator unseal "${!key}" >/dev/null
	wait_active "${c}0" >/dev/null || fail "node ${c}0 did not become active"
	for n in 1 2; do
		v "$c$n" operator raft join "$(addr "${c}0")" >/dev/null
		v "$c$n" operator unseal "${!key}" >/dev/null
	done
	local root="root_$c"
	for _ in $(seq 100); do
		[ "$(VAULT_TOKEN="${!root}" v "${c}0" operator raft list-peers -format=json 2>/dev/null | jq '[.data.config.servers[] | select(.voter)] | length')" = 3 ] && return 0
		sleep 0.2
	done
	fail "cluster $c did not reach three voters"
}

# credsign_token C PERIOD: on the new cluster C (C0 active), mounts KV v2 at
# secret/, installs deployments/vault/credsign-policy.hcl and prints a
# periodic token (PERIOD, e.g. 1h) with that policy alone.
credsign_token() {
	local root="root_$1"
	VAULT_TOKEN="${!root}" v "${1}0" secrets enable -path=secret kv-v2 >/dev/null
	VAULT_TOKEN="${!root}" v "${1}0" policy write credsign deployments/vault/credsign-policy.hcl >/dev/null
	VAULT_TOKEN="${!root}" v "${1}0" token create -policy=credsign -no-default-policy -period="$2" -field=token
}

# start_credsign NODE TOKEN LOG: $work/credsign serve (built by the caller)
# on Vault node NODE with TOKEN, rate limiting off, its log in $work/LOG;
# sets srv to its URL once it is ready.
start_credsign() {
	VAULT_ADDR="$(addr "$1")" VAULT_TOKEN="$2" "$work/credsign" serve --addr 127.0.0.1:0 --rate-limit 0 2>"$work/$3" >/dev/null &
	pids+=($!)
	wait_listening "$work/$3"
	srv="http://$listen"
	curl -sf "$srv/readyz" >/dev/null || fail "credsign on $1 is not ready"
}
