#!/usr/bin/env bash
# vault.sh builds HashiCorp Vault 1.13.0 from the Go module proxy, in a module
# of its own outside this repository, and caches the binary. It prints the
# binary path on its last line of stdout, so callers can do:
#
#   VAULT_BIN=$(scripts/vault.sh | tail -n1)
#
# Cache: ${CREDSIGN_CACHE:-$HOME/.cache/credsign}/bin/vault-1.13.0 (the path
# internal/testing/vaulttest also looks at). The build is skipped when it exists.
#
# Vault's go.mod replaces api/ and sdk/ with its own directories, which a
# module that depends on Vault does not see; 1.13.0 builds when those two
# modules are pinned to the versions it was released with (later tags do not
# build that way).
set -euo pipefail

VAULT_VERSION=1.13.0
SDK_VERSION=v0.8.1
API_VERSION=v1.9.0

cache="${CREDSIGN_CACHE:-$HOME/.cache/credsign}"
bin="$cache/bin/vault-$VAULT_VERSION"

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache/bin"
work="$(mktemp -d "${TMPDIR:-/tmp}/credsign-vault-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

cd "$work"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GOTOOLCHAIN=local
echo "vault.sh: building vault $VAULT_VERSION in $work (this takes several minutes)" >&2
go mod init credsign.local/vaultbuild >&2
# Go 1.23+ rejects X.509 certificates with negative serial numbers; a CA
# bundle compiled into a Vault 1.13 dependency (gosnowflake) has one and the
# binary panics at start without this. The main module's godebug line sets
# the default for the binary.
go mod edit -godebug=x509negativeserial=1
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/hashicorp/vault"
GO
go get "github.com/hashicorp/vault@v$VAULT_VERSION" \
	"github.com/hashicorp/vault/sdk@$SDK_VERSION" \
	"github.com/hashicorp/vault/api@$API_VERSION" >&2
go build -trimpath -o "$bin.tmp" github.com/hashicorp/vault >&2
"$bin.tmp" version >&2
mv "$bin.tmp" "$bin"
echo "vault.sh: built $bin" >&2
echo "$bin"
