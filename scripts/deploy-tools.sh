#!/usr/bin/env bash
# deploy-tools.sh installs, once, the offline tools scripts/check-deploy.sh
# uses, and prints `NAME=PATH` lines for them on stdout:
#
#   HELM         helm, built from the Go module proxy
#   KUBECONFORM  kubeconform, built from the Go module proxy
#   COMPOSE      compose-check: compose-go (the library `docker compose` loads
#                files with) in a ten-line main, so no Docker engine or CLI
#                plugin is needed
#   K8S_VERSION  the Kubernetes version of those schemas (helm --kube-version)
#   K8S_SCHEMAS  a directory of JSON schemas for every Kubernetes kind, made by
#                scripts/k8sschema from the OpenAPI document in the
#                k8s.io/kubernetes module, plus the ServiceMonitor and
#                cert-manager Certificate CRD schemas
#
# Everything is cached under ${CREDSIGN_CACHE:-$HOME/.cache/credsign}; a
# second run costs nothing. Each tool is built in a module of its own outside
# this repository, so go.mod never sees them.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=local GOFLAGS=-mod=mod

HELM_VERSION=v3.19.5
KUBECONFORM_VERSION=v0.7.0
COMPOSE_GO_VERSION=v2.9.1
K8S_VERSION=v1.34.1
PROM_OPERATOR_VERSION=v0.85.0
CERT_MANAGER_VERSION=v1.18.2

cache="${CREDSIGN_CACHE:-$HOME/.cache/credsign}"
mkdir -p "$cache/bin"

# gobuild NAME PACKAGE@VERSION: go install into $cache/bin/NAME-VERSION.
gobuild() {
	local name="$1" pkgver="$2" out="$cache/bin/$1-${2##*@}"
	if [ ! -x "$out" ]; then
		echo "deploy-tools.sh: building $pkgver (once)" >&2
		local d
		d="$(mktemp -d)"
		GOBIN="$d" go install -trimpath "$pkgver" >&2
		mv "$d/$(basename "${pkgver%@*}")" "$out"
		rm -rf "$d"
	fi
	echo "$out"
}

helm="$(gobuild helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")"
kubeconform="$(gobuild kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION")"

compose="$cache/bin/compose-check-$COMPOSE_GO_VERSION"
if [ ! -x "$compose" ]; then
	echo "deploy-tools.sh: building compose-check with compose-go $COMPOSE_GO_VERSION (once)" >&2
	d="$(mktemp -d)"
	(
		cd "$d"
		go mod init credsign.local/composecheck >&2
		cat > main.go <<'GO'
// compose-check loads a compose file the way `docker compose config` does
// (schema validation, interpolation from the environment, normalisation),
// keeps the services named after the file and their dependencies, and prints
// the result. Any error exits 1.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE [SERVICE...]")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithOsEnv, cli.WithConsistency(true))
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
	if len(os.Args) > 2 {
		if project, err = project.WithSelectedServices(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "compose-check:", err)
			os.Exit(1)
		}
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
GO
		go get "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION" >&2
		go build -trimpath -o "$compose" . >&2
	)
	rm -rf "$d"
fi
schemas="$cache/k8s-schemas-$K8S_VERSION-po$PROM_OPERATOR_VERSION-cm$CERT_MANAGER_VERSION"
if [ ! -f "$schemas/.complete" ]; then
	echo "deploy-tools.sh: generating Kubernetes $K8S_VERSION schemas (once)" >&2
	dir() { (cd "$(mktemp -d)" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); }
	k8s="$(dir "k8s.io/kubernetes@$K8S_VERSION")"
	po="$(dir "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION")"
	cm="$(dir "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION")"
	[ -n "$k8s" ] && [ -n "$po" ] && [ -n "$cm" ] || { echo "deploy-tools.sh: a module download failed" >&2; exit 1; }
	rm -rf "$schemas"
	(cd "$here" && GOFLAGS= go run ./scripts/k8sschema -out "$schemas" -swagger "$k8s/api/openapi-spec/swagger.json" \
		"$po/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
		"$po/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" \
		"$cm/deploy/crds/crd-certificates.yaml") >&2
	touch "$schemas/.complete"
fi

echo "HELM=$helm"
echo "KUBECONFORM=$kubeconform"
echo "COMPOSE=$compose"
echo "K8S_SCHEMAS=$schemas"
echo "K8S_VERSION=$K8S_VERSION"
