# Least-privilege Vault policy for the credsign service.
#
# It covers the KV v2 mount "secret" and the prefix "credsign/" (the defaults
# of CREDSIGN_VAULT_MOUNT and CREDSIGN_VAULT_PREFIX); change the paths below
# if you change those. Install it with:
#
#   vault policy write credsign deployments/vault/credsign-policy.hcl

# Device and API token records: read them, create them and update them (the
# service always writes with check-and-set). No "delete" here: the service
# never soft-deletes; it removes records through their metadata, below.
path "secret/data/credsign/*" {
  capabilities = ["create", "read", "update"]
}

# List devices, check that a record exists, and delete a record with every
# version of it (a metadata delete, so no old secret version stays behind).
path "secret/metadata/credsign/*" {
  capabilities = ["read", "list", "delete"]
}

# The service checks its token at start and keeps it alive.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
