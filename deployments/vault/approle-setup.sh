#!/usr/bin/env bash
# approle-setup.sh creates what the credsign service needs to log in to Vault
# with AppRole: the credsign policy, the approle auth method (if not enabled
# yet), the role "credsign", and two files in OUT_DIR (default
# ./vault-approle): role-id and secret-id (mode 0600).
#
# Run it as a Vault administrator:
#
#   VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=<admin token> \
#     deployments/vault/approle-setup.sh /etc/credsign/vault
#
# then start the service with
#
#   CREDSIGN_VAULT_AUTH=approle
#   CREDSIGN_VAULT_ROLE_ID=$(cat /etc/credsign/vault/role-id)
#   CREDSIGN_VAULT_SECRET_ID_FILE=/etc/credsign/vault/secret-id
#
# Tunables (environment): CREDSIGN_APPROLE_NAME (credsign),
# CREDSIGN_APPROLE_TOKEN_TTL (1h), CREDSIGN_APPROLE_TOKEN_MAX_TTL (24h). The
# service renews its token up to the max TTL and then logs in again with the
# secret ID, which does not expire and may be used any number of times; to
# rotate it, run this script again and restart nothing (the file is read at
# every login), then destroy the old secret ID.
set -euo pipefail

: "${VAULT_ADDR:?set VAULT_ADDR}"
out="${1:-./vault-approle}"
role="${CREDSIGN_APPROLE_NAME:-credsign}"
here="$(cd "$(dirname "$0")" && pwd)"

vault policy write credsign "$here/credsign-policy.hcl"

if ! vault auth list -format=json | grep -q '"approle/"'; then
	vault auth enable approle
fi

vault write "auth/approle/role/$role" \
	token_policies=credsign \
	token_no_default_policy=true \
	token_ttl="${CREDSIGN_APPROLE_TOKEN_TTL:-1h}" \
	token_max_ttl="${CREDSIGN_APPROLE_TOKEN_MAX_TTL:-24h}" \
	secret_id_ttl=0 \
	secret_id_num_uses=0

umask 077
mkdir -p "$out"
vault read -field=role_id "auth/approle/role/$role/role-id" > "$out/role-id"
vault write -f -field=secret_id "auth/approle/role/$role/secret-id" > "$out/secret-id.tmp"
mv "$out/secret-id.tmp" "$out/secret-id"
echo "wrote $out/role-id and $out/secret-id" >&2
