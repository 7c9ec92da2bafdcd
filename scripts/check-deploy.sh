#!/usr/bin/env bash
# check-deploy.sh checks every deployment file in deployments/, offline:
#
#  - compose.yaml loads as `docker compose config` would (compose-go), and
#    `up -d vault`, the documented first step, needs no variable set;
#  - the Helm chart passes `helm lint --strict`, renders with each value set
#    in deployments/helm/credsign/ci/ and the defaults, and every rendered
#    object validates against the Kubernetes API schemas (kubeconform,
#    strict: an unknown field fails), with the invariants the chart
#    promises (replicas >= 2, probes, non-root, read-only) asserted;
#  - deployments/kubernetes/credsign.yaml validates the same way;
#  - deployments/systemd/credsign.service passes `systemd-analyze verify`
#    with no warning, and `systemd-analyze security` rates it OK.
#
# Tools come from scripts/deploy-tools.sh (built once, cached). Any failure
# exits non-zero with a line naming it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
fail() { echo "check-deploy.sh: FAIL: $*" >&2; exit 1; }
command -v jq >/dev/null || fail "jq is not installed"
eval "$(scripts/deploy-tools.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- compose -----------------------------------------------------------
compose=deployments/compose.yaml
# The first step, with nothing exported: only vault is started.
(unset CREDSIGN_VAULT_ROLE_ID; "$COMPOSE" "$compose" vault) > "$work/compose-vault.yaml" ||
	fail "$compose: 'up -d vault' would fail with no variable set"
grep -q 'hashicorp/vault' "$work/compose-vault.yaml" || fail "$compose: the vault service lost its image"
grep -q '^  credsign:' "$work/compose-vault.yaml" && fail "$compose: selecting vault also selected credsign"
# The whole file, as in the later steps.
CREDSIGN_VAULT_ROLE_ID=role-id-for-check "$COMPOSE" "$compose" > "$work/compose.yaml" ||
	fail "$compose does not load"
grep -q 'CREDSIGN_VAULT_ROLE_ID: role-id-for-check' "$work/compose.yaml" ||
	fail "$compose: CREDSIGN_VAULT_ROLE_ID is not passed to credsign"
grep -q 'read_only: true' "$work/compose.yaml" || fail "$compose: credsign is not read_only"
# Two planes: the device plane published, the admin plane on loopback only.
grep -q -- '--admin-addr=:9443' "$work/compose.yaml" || fail "$compose: credsign has no admin plane"
grep -B3 'target: 9443' "$work/compose.yaml" | grep -q 'host_ip: 127.0.0.1' ||
	fail "$compose: the admin plane's port is published beyond the host's loopback"
echo "check-deploy.sh: ok: $compose"

# The build context (compose's `build: ..`, docker build .) leaves out
# history, local data and secrets.
for pat in .git data/ '**/*.key' '**/admin-token*' deployments/vault-approle/ deployments/tls/ bin/; do
	grep -qxF -- "$pat" .dockerignore || fail ".dockerignore does not exclude $pat"
done
if grep -q '^!' .dockerignore; then fail ".dockerignore re-includes something: $(grep '^!' .dockerignore)"; fi
echo "check-deploy.sh: ok: .dockerignore"

# --- Kubernetes ----------------------------------------------------------
kc() { # FILE...: strict schema validation, every object must have a schema
	"$KUBECONFORM" -strict -summary -output text \
		-schema-location "$K8S_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$@"
}

# The validator itself must refuse a misspelt field and a wrong type, or a
# green run below proves nothing.
cat > "$work/bad.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  replicas: two
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers: [{name: bad, image: bad, readinesProbe: {}}]
EOF
if kc "$work/bad.yaml" > "$work/bad.out" 2>&1; then
	fail "kubeconform accepted an invalid Deployment: the schemas in $K8S_SCHEMAS are too lax"
fi

# check_planes FILE WHAT: the rendered objects keep the planes apart: an
# Ingress has only the device plane's Service (port https) as backend,
# never the admin Service; the ServiceMonitor scrapes the admin Service's
# port; a NetworkPolicy admits the admin port from its own peers and lets
# registrations out on 443.
check_planes() {
	local file="$1" what="$2" dir devsvc doc svcs ports
	dir="$(mktemp -d -p "$work")"
	awk -v d="$dir" '/^---/ { n++; next } { print > (d "/" n + 0 ".yaml") }' "$file"
	devsvc="$(awk '/^kind: Service$/ { p = 1 } p && /^  name: / { print $2; exit }' "$file")"
	[ -n "$devsvc" ] || fail "$what: no Service"
	grep -q "^  name: $devsvc-admin$" "$file" || fail "$what: no admin Service $devsvc-admin"
	for doc in "$dir"/*.yaml; do
		case "$(sed -n 's/^kind: //p' "$doc")" in
		Ingress)
			svcs="$(awk '/ service:$/ { getline; sub(/^ *name: */, ""); print }' "$doc" | sort -u)"
			ports="$(awk '/ port:$/ { getline; sub(/^ *(name|number): */, ""); print }' "$doc" | sort -u)"
			[ "$svcs" = "$devsvc" ] || fail "$what: the Ingress routes to '$svcs'; only the device plane's Service $devsvc may be published"
			[ "$ports" = https ] || fail "$what: the Ingress routes to port '$ports'; only the device plane's port https may be published"
			;;
		ServiceMonitor)
			grep -q 'app.kubernetes.io/component: admin-plane' "$doc" && grep -q -- '- port: admin$' "$doc" ||
				fail "$what: the ServiceMonitor does not scrape the admin plane (/metrics is not on the device plane)"
			;;
		NetworkPolicy)
			grep -Eq -- '- \{?port: admin' "$doc" || fail "$what: the NetworkPolicy does not admit the admin port"
			grep -q -- '{port: 443, protocol: TCP}' "$doc" || fail "$what: the NetworkPolicy lets no registration out on 443"
			;;
		esac
	done
}

chart=deployments/helm/credsign
kv=(--kube-version "${K8S_VERSION#v}")
"$HELM" lint --strict "${kv[@]}" "$chart" >/dev/null || { "$HELM" lint --strict "${kv[@]}" "$chart"; fail "helm lint $chart"; }
for values in default "$chart"/ci/*-values.yaml; do
	args=()
	[ "$values" = default ] || args=(-f "$values")
	name="$(basename "$values" .yaml)"
	"$HELM" lint --strict "${kv[@]}" "$chart" "${args[@]}" >/dev/null || fail "helm lint $chart with $values"
	"$HELM" template credsign "$chart" "${kv[@]}" --namespace iot "${args[@]}" > "$work/$name.yaml" ||
		fail "helm template $chart with $values"
	kc "$work/$name.yaml" || fail "$chart rendered with $values does not validate"
	# The chart's promises, read from what it renders.
	dep="$(awk '/^kind: Deployment/ { p = 1 } p && /^---/ { exit } p' "$work/$name.yaml")"
	for want in 'path: /healthz' 'path: /readyz' 'runAsNonRoot: true' 'readOnlyRootFilesystem: true' \
		'allowPrivilegeEscalation: false' 'limits:' 'requests:' 'name: GOMEMLIMIT' '--cache-size='; do
		grep -q -- "$want" <<<"$dep" || fail "$chart with $values: the Deployment lacks '$want'"
	done
	for want in '--admin-addr=:9443' '--admin-tls-cert=' 'name: admin' 'containerPort: 9443'; do
		grep -q -- "$want" <<<"$dep" || fail "$chart with $values: the Deployment lacks '$want' (the admin plane)"
	done
	check_planes "$work/$name.yaml" "$chart with $values"
	replicas="$(sed -n 's/^  replicas: //p' <<<"$dep")"
	minrep="$(sed -n 's/^  minReplicas: //p' "$work/$name.yaml")"
	[ "${replicas:-${minrep:-0}}" -ge 2 ] || fail "$chart with $values: fewer than 2 replicas"
	echo "check-deploy.sh: ok: $chart with $values ($(grep -c '^kind:' "$work/$name.yaml") objects: $(grep '^kind:' "$work/$name.yaml" | cut -d' ' -f2 | sort | tr '\n' ' '))"
done
# Everything the issue asks of the chart appears in some value set.
all="$(cat "$work"/*.yaml)"
for kind in Deployment Service ServiceAccount PodDisruptionBudget HorizontalPodAutoscaler ServiceMonitor PrometheusRule NetworkPolicy Certificate Ingress; do
	grep -q "^kind: $kind$" <<<"$all" || fail "no value set renders a $kind"
done
grep -q 'alert: CredsignStoreUnavailable' "$work/approle-certmanager-values.yaml" || fail "the PrometheusRule lacks the rules"
grep -q 'CREDSIGN_VAULT_K8S_ROLE' "$work/default.yaml" || fail "the default values do not use Vault's Kubernetes auth"
grep -q 'CREDSIGN_VAULT_SECRET_ID_FILE' "$work/approle-certmanager-values.yaml" || fail "approle values do not read the secret id from a Secret"
# check_planes must catch an Ingress that publishes the admin plane, or a
# green run above proves nothing.
sed 's/^                name: credsign$/                name: credsign-admin/' "$work/approle-certmanager-values.yaml" > "$work/tampered.yaml"
cmp -s "$work/tampered.yaml" "$work/approle-certmanager-values.yaml" && fail "could not tamper with the Ingress"
if (check_planes "$work/tampered.yaml" tampered) 2>/dev/null; then fail "check_planes accepted an Ingress to the admin Service"; fi
sed 's/^                  name: https$/                  name: admin/' "$work/approle-certmanager-values.yaml" > "$work/tampered.yaml"
if (check_planes "$work/tampered.yaml" tampered) 2>/dev/null; then fail "check_planes accepted an Ingress to the admin port"; fi
# A bad value is refused, not rendered.
if "$HELM" template credsign "$chart" "${kv[@]}" --set vault.auth=token >/dev/null 2>&1; then
	fail "$chart renders with vault.auth=token"
fi
for bad in autoscaling.minReplicas=1 replicaCount=1 vault.addr=vault:8200 shutdownTimeout=1m; do
	if "$HELM" template credsign "$chart" "${kv[@]}" --set "$bad" >/dev/null 2>&1; then
		fail "$chart renders with $bad"
	fi
done

kc deployments/kubernetes/credsign.yaml || fail "deployments/kubernetes/credsign.yaml does not validate"
check_planes deployments/kubernetes/credsign.yaml deployments/kubernetes/credsign.yaml
echo "check-deploy.sh: ok: deployments/kubernetes/credsign.yaml"

# --- systemd -------------------------------------------------------------
unit=deployments/systemd/credsign.service
if command -v systemd-analyze >/dev/null; then
	# verify wants ExecStart's binary to exist: point it at a real one.
	go build -o "$work/credsign" ./cmd/credsign
	sed "s|/usr/local/bin/credsign|$work/credsign|" "$unit" > "$work/credsign.service"
	systemd-analyze verify "$work/credsign.service" > "$work/verify.out" 2>&1 ||
		{ cat "$work/verify.out" >&2; fail "systemd-analyze verify $unit"; }
	# It exits 0 on warnings (an unknown key, a bad value): any output fails.
	[ ! -s "$work/verify.out" ] || { cat "$work/verify.out" >&2; fail "systemd-analyze verify $unit warned"; }
	for want in 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'StateDirectory=credsign' 'LoadCredential=admin-token:'; do
		grep -q "^$want" "$unit" || fail "$unit lacks $want"
	done
	score="$(systemd-analyze security --offline=true "$work/credsign.service" 2>/dev/null | sed -n 's/.*Overall exposure level for credsign.service: \([0-9.]*\).*/\1/p')"
	[ -n "$score" ] || fail "systemd-analyze security gave no score for $unit"
	awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "$unit: exposure $score, want 2.0 or less"
	echo "check-deploy.sh: ok: $unit (systemd-analyze verify clean, exposure $score)"
else
	fail "systemd-analyze is not installed (Debian package systemd)"
fi
echo "check-deploy.sh: ok"
