#!/usr/bin/env bash
# check-prometheus.sh checks the monitoring files in deployments/:
#
#  1. promtool check rules and promtool test rules on the Prometheus rules;
#  2. every query of the Grafana dashboard parses (promtool) and names only
#     metrics the rules or the server know;
#  3. a real Prometheus (Debian's) on loopback scrapes a real
#     `credsign serve --dev` that has issued, refused, rate-limited and missed,
#     and every series the rules read is there, except the gauges listed in
#     CONDITIONAL, which a dev server on the file store without TLS does not
#     export (cmd/credsign's tests check those).
#
# Needs promtool and prometheus (Debian package prometheus), curl and jq.
# Any failure exits non-zero with a line saying what failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
rules=deployments/prometheus/credsign-rules.yaml
tests=deployments/prometheus/credsign-rules_test.yaml
dash=deployments/grafana/credsign-dashboard.json
# Exported only with the Vault store, --tls-cert or --admin-tls-cert, so absent from the
# loopback `serve --dev` scraped here (cmd/credsign's tests check them).
CONDITIONAL="credsign_vault_token_expiry_timestamp_seconds credsign_tls_certificate_expiry_timestamp_seconds credsign_admin_tls_certificate_expiry_timestamp_seconds"

NAME=check-prometheus.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
for t in promtool prometheus curl jq; do
	command -v "$t" >/dev/null || fail "$t is not installed"
done

# 1. Rules.
promtool check rules --lint=all --lint-fatal "$rules" >/dev/null || fail "promtool check rules $rules"
promtool test rules "$tests" || fail "promtool test rules $tests"

# 2. Dashboard: valid JSON, every expr parses, every metric is known.
jq -e '.panels | length > 0' "$dash" >/dev/null || fail "$dash: not JSON or no panels"
{
	echo "groups:"
	echo "  - name: dashboard"
	echo "    rules:"
	i=0
	jq -r '.panels[].targets[].expr | gsub("\\$job"; ".*")' "$dash" | while IFS= read -r e; do
		i=$((i + 1))
		printf '      - record: dashboard:expr_%d\n        expr: %s\n' "$i" "$(jq -Rn --arg e "$e" '$e')"
	done
} > "$work/dashboard-rules.yaml"
promtool check rules --lint-fatal "$work/dashboard-rules.yaml" >/dev/null || fail "$dash: a query does not parse (promtool check rules $work/dashboard-rules.yaml)"

# Base names of the metrics the rules read: words starting credsign_ in the
# rules' expressions (recording rule names have colons, so are left out),
# histogram suffixes removed.
rule_metrics="$(grep -v '^\s*#' "$rules" | grep -oE '[a-z0-9_:]*credsign_[a-z0-9_:]+' | grep -v : |
	sed -E 's/_(bucket|count|sum)$//' | sort -u)"
[ -n "$rule_metrics" ] || fail "found no metric in $rules"
for m in $(jq -r '.panels[].targets[].expr' "$dash" | grep -oE '\b(credsign|process|go)_[a-z0-9_]+' | sed -E 's/_(bucket|count|sum)$//' | sort -u); do
	case " $(echo $rule_metrics) process_resident_memory_bytes process_cpu_seconds_total " in
	*" $m "*) ;;
	*) fail "$dash reads $m, which neither the rules nor this check know" ;;
	esac
done

# 3. A real scrape.
go build -o "$work/" ./cmd/credsign
admin="csa_promcheck_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CREDSIGN_ADMIN_TOKEN="$admin" "$work/credsign" serve --dev --addr 127.0.0.1:0 \
	--data-dir "$work/data" --rate-limit 1 --rate-burst 2 2>"$work/credsign.log" >/dev/null &
pids+=($!)
wait_listening "$work/credsign.log"
addr=$listen
base="http://$addr"

api() { # METHOD PATH TOKEN [BODY]: prints the status code
	local args=(-s -o "$work/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $3")
	[ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' -d "$4")
	curl "${args[@]}" "$base$2"
}
code="$(api PUT /v1/devices/prom-check-1 "$admin" '{"cloud":"huawei","params":{"deviceId":"prom_check_1"},"secret":"not-a-real-secret-1"}')"
[[ "$code" == 20? ]] || fail "registering a device answered $code: $(cat "$work/body")"
code="$(api POST /v1/devices/prom-check-1/tokens "$admin")"
[[ "$code" == 20? ]] || fail "creating a device token answered $code: $(cat "$work/body")"
devtok="$(jq -r .token "$work/body")"
seen429=0
for _ in 1 2 3 4 5; do
	code="$(api POST /v1/devices/prom-check-1/credentials "$devtok")"
	[ "$code" = 429 ] && seen429=1
done
[ "$seen429" = 1 ] || fail "five credential requests at 1 a minute, burst 2, got no 429"
code="$(api GET /v1/devices/no-such-device "$admin")"
[ "$code" = 404 ] || fail "GET of a missing device answered $code"

# Prometheus on a free loopback port (it cannot report a port 0 choice).
cat > "$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/$rules
scrape_configs:
  - job_name: credsign
    static_configs:
      - targets: ['$addr']
EOF
promport=""
for _ in $(seq 20); do
	p=$(( 20000 + RANDOM % 40000 ))
	prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
		--web.listen-address="127.0.0.1:$p" >"$work/prometheus.log" 2>&1 &
	ppid=$!
	for _ in $(seq 50); do
		if curl -sf "http://127.0.0.1:$p/-/ready" >/dev/null 2>&1; then promport=$p; break; fi
		kill -0 "$ppid" 2>/dev/null || break
		sleep 0.2
	done
	if [ -n "$promport" ]; then pids+=("$ppid"); break; fi
	kill "$ppid" 2>/dev/null || true
	wait "$ppid" 2>/dev/null || true
done
[ -n "$promport" ] || { tail -5 "$work/prometheus.log" >&2; fail "prometheus did not start"; }
prom="http://127.0.0.1:$promport"

query() { curl -sf --data-urlencode "query=$1" "$prom/api/v1/query" | jq -r '.data.result | length'; }
for _ in $(seq 60); do
	[ "$(query 'up{job="credsign"} == 1')" = 1 ] && break
	sleep 0.5
done
[ "$(query 'up{job="credsign"} == 1')" = 1 ] || fail "prometheus does not see credsign up at $addr"
# Rules loaded and evaluating without error.
health="$(curl -sf "$prom/api/v1/rules" | jq -r '[.data.groups[].rules[] | select(.health != "ok" and .health != "unknown")] | length')"
[ "$health" = 0 ] || fail "a rule evaluates with an error: $(curl -sf "$prom/api/v1/rules" | jq -c '[.data.groups[].rules[] | select(.health=="err") | {name, lastError}]')"

missing=0
for m in $rule_metrics; do
	n="$(query "count({__name__=~\"${m}(_count|_bucket|_sum)?\",job=\"credsign\"})")"
	case " $CONDITIONAL " in
	*" $m "*)
		echo "check-prometheus.sh: exported only with Vault or TLS, not by this dev server: $m"
		continue ;;
	esac
	if [ "$n" = 0 ]; then echo "check-prometheus.sh: missing series: $m" >&2; missing=1; else echo "check-prometheus.sh: ok: $m"; fi
done
[ "$missing" = 0 ] || fail "series the rules read are missing from a live scrape"
# The labels the rules aggregate by are there too.
[ "$(query 'credsign_credentials_issued_total{cloud="huawei",outcome="issued"}')" = 1 ] || fail "no issued sample for huawei"
[ "$(query 'credsign_http_request_duration_seconds_count{code="429"}')" -ge 1 ] || fail "no code=\"429\" series"
[ "$(query 'credsign_store_errors_total{kind="not_found"}')" -ge 1 ] || fail "no kind=\"not_found\" store error series"
echo "check-prometheus.sh: ok (rules, rule tests, dashboard, live scrape of $addr by prometheus on $prom)"
