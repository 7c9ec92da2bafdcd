#!/usr/bin/env bash
# upgrade-fixtures.sh REF: writes the data that the credsign of git REF (a
# release tag, e.g. v0.4.0) leaves in each store, as fixtures for the upgrade
# test (internal/testing/upgrade): the embedded store's data directory, and
# the KV records it wrote into a real Vault, with a manifest of the tokens
# and devices that the newer build must keep serving.
#
#   scripts/upgrade-fixtures.sh v0.4.0
#
# writes internal/testing/upgrade/testdata/REF/{file,vault-kv.json,manifest.json}.
# It builds REF in a temporary git worktree, so the fixtures are made by that
# version's own code, not by the build under test. Needs a vault binary
# (VAULT_BIN, else scripts/vault.sh's cache), curl and python3.
set -euo pipefail
NAME=upgrade-fixtures.sh
cd "$(dirname "$0")/.."
root="$PWD"
. scripts/lib.sh

ref="${1:?usage: scripts/upgrade-fixtures.sh REF (a release tag)}"
out="$root/internal/testing/upgrade/testdata/$ref"
vault="${VAULT_BIN:-$(scripts/vault.sh | tail -n1)}"

git worktree add -q --detach "$work/src" "$ref"
trap 'git -C "$root" worktree remove --force "$work/src" 2>/dev/null || true; cleanup' EXIT
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -o "$work/credsign" ./cmd/credsign)

admin="csa_upgrade_fixture_admin_token_0123456789"
export CREDSIGN_ADMIN_TOKEN="$admin"

# scenario BASE MANIFEST: every kind of record the old version writes.
scenario() {
	local b="$1" m="$2"
	call() { # call METHOD PATH TOKEN [BODY] -> body on stdout, fails on non-2xx
		local args=(--fail-with-body -sS -X "$1" "$b$2" -H "Authorization: Bearer $3")
		[ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' -d "$4")
		curl "${args[@]}"
	}
	field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
	prov=$(call POST /v1/tokens "$admin" '{"role":"provisioner"}' | field token)
	call PUT /v1/devices/ali-1 "$prov" '{"cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"ali-1"},"secret":"fixture-aliyun-secret","labels":{"site":"sz"}}' >/dev/null
	call PUT /v1/devices/hw-1 "$prov" '{"cloud":"huawei","params":{"deviceId":"6409_hw1"},"secret":"12345678","labels":{"site":"bj"}}' >/dev/null
	call PUT /v1/devices/az-1 "$prov" '{"cloud":"azure","params":{"hubHost":"fixture.azure-devices.net","deviceId":"az-1"},"secret":"c2VjcmV0LWtleS1mb3ItZml4dHVyZS0wMTIzNDU2Nzg5"}' >/dev/null
	call PUT /v1/devices/jwt-1 "$prov" '{"cloud":"jwt","params":{"host":"emqx.example"}}' >/dev/null
	call POST /v1/keys/jwt/rotate "$admin" >/dev/null
	call PUT /v1/groups/lamps "$admin" '{"cloud":"azure","secret":"Z3JvdXAta2V5LWZvci1maXh0dXJlLTAxMjM0NTY3ODk=","params":{"hubHost":"lamps.azure-devices.net","deviceId":"{deviceId}"}}' >/dev/null
	enrol=$(call POST /v1/groups/lamps/enrolment-tokens "$admin" '{"maxUses":5,"ttlSeconds":31536000,"idPattern":"lamp-[0-9]{3}"}' | field token)
	lamp=$(call POST /v1/enrol "$enrol" '{"deviceId":"lamp-001"}' | field token)
	{
		printf '{"admin":"%s","provisioner":"%s","enrolment":"%s","devices":{' "$admin" "$prov" "$enrol"
		local sep=""
		for d in ali-1 hw-1 az-1 jwt-1; do
			printf '%s"%s":"%s"' "$sep" "$d" "$(call POST "/v1/devices/$d/tokens" "$prov" | field token)"
			sep=","
		done
		printf ',"lamp-001":"%s"},"kids":%s}\n' "$lamp" "$(curl -sS "$b/.well-known/jwks.json" | python3 -c 'import json,sys; print(json.dumps(sorted(k["kid"] for k in json.load(sys.stdin)["keys"])))')"
	} | python3 -m json.tool >"$m"
}

rm -rf "$out" && mkdir -p "$out/file"

# The embedded store.
free_port
"$work/credsign" serve --addr "127.0.0.1:$port" --data-dir "$out/file" --store file 2>"$work/file.log" &
pids+=($!)
wait_listening "$work/file.log"
scenario "http://$listen" "$out/manifest.json"
kill "${pids[-1]}" && wait "${pids[-1]}" || true

# Vault: the same scenario, then every record credsign wrote, as KV data.
free_port
vport=$port
"$vault" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$vport" >"$work/vault.log" 2>&1 &
pids+=($!)
export VAULT_ADDR="http://127.0.0.1:$vport" VAULT_TOKEN=root
until curl -fsS "$VAULT_ADDR/v1/sys/health" >/dev/null 2>&1; do sleep 0.1; done
free_port
"$work/credsign" serve --addr "127.0.0.1:$port" --store vault 2>"$work/vault-credsign.log" &
pids+=($!)
wait_listening "$work/vault-credsign.log"
scenario "http://$listen" "$work/vault-manifest.json"
python3 - "$work/vault-manifest.json" "$out/vault-kv.json" <<'EOF'
import json, os, sys, urllib.request
addr, tok = os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"]
def get(path, method="GET"):
    req = urllib.request.Request(addr + path, method=method, headers={"X-Vault-Token": tok})
    try:
        return json.load(urllib.request.urlopen(req))
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
records = {}
def walk(rel):
    ans = get("/v1/secret/metadata/credsign/" + rel, "LIST")
    for k in (ans or {}).get("data", {}).get("keys", []):
        if k.endswith("/"):
            walk(rel + k)
        else:
            data = get("/v1/secret/data/credsign/" + rel + k)
            if data and data["data"]["data"] is not None:
                records[rel + k] = data["data"]["data"]
walk("")
json.dump({"manifest": json.load(open(sys.argv[1])), "records": records}, open(sys.argv[2], "w"), indent=1, sort_keys=True)
EOF
echo "$NAME: wrote $out ($(find "$out" -type f | wc -l) files)"
