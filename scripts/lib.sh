# lib.sh: helpers shared by the scripts that start servers on loopback
# (vault-ha.sh, vault-snapshot.sh, check-prometheus.sh, load.sh,
# bootstorm.sh, upgrade-fixtures.sh). Source it after
# setting NAME (the script's name for messages):
#
#   NAME=vault-ha.sh; . scripts/lib.sh
#
# It defines fail, makes $work (a temporary directory) and $pids (processes
# to stop), removes both on exit, and gives free_port and wait_listening.

fail() { echo "$NAME: FAIL: $*" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# free_port sets port to a free loopback port below the kernel's ephemeral
# range (32768 and up), so no outgoing connection holds one: a port is taken
# when no socket in /proc/net/tcp uses it and it was not handed out already.
used=" "
free_port() {
	for _ in $(seq 100); do
		port=$(( 10000 + RANDOM % 22000 ))
		case "$used" in *" $port "*) continue ;; esac
		if ! awk -v p="$(printf ':%04X' "$port")" '$2 ~ p"$" { f=1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			used="$used$port "
			return
		fi
	done
	fail "no free port"
}

# wait_listening LOG sets listen to the address credsign's "listening" line
# in LOG names (credsign serve --addr 127.0.0.1:0), or fails after 10 s.
wait_listening() {
	listen=""
	for _ in $(seq 100); do
		# The background job opens LOG, maybe after the first look.
		listen="$(sed -n 's/.*"addr":"\([^"]*\)".*"message":"listening".*/\1/p' "$1" 2>/dev/null || true)"
		[ -n "$listen" ] && return
		sleep 0.1
	done
	cat "$1" >&2
	fail "credsign did not start"
}
