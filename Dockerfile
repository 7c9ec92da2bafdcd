# The credsign image: static binaries on a minimal base, run as uid 65532.
#
#   docker build -t credsign .
#
# scripts/image.sh builds the same layout without a Docker daemon (buildah)
# and checks it: /usr/local/bin/credsign (the entrypoint), credsign-agent and
# credsign-emulator; the CA bundle; user nonroot (65532) with home
# /home/nonroot; no shell; nothing written outside a mounted volume, so the
# root file system can be read-only.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ \
    ./cmd/credsign ./cmd/credsign-agent ./cmd/credsign-emulator

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="credsign" \
      org.opencontainers.image.description="Short-lived MQTT credentials for IoT devices, from secrets kept in Vault" \
      org.opencontainers.image.source="https://github.com/credsign/credsign" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/ /usr/local/bin/
# Numeric, so Kubernetes can check runAsNonRoot without a runAsUser.
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8443
# Production: give --tls-cert/--tls-key and VAULT_ADDR plus an auth method
# (docs/vault.md); the admin token comes from CREDSIGN_ADMIN_TOKEN or
# --admin-token-file. Kubernetes: deployments/helm/credsign.
ENTRYPOINT ["/usr/local/bin/credsign"]
CMD ["serve", "--addr", ":8443", "--tls-cert", "/etc/credsign/tls.crt", "--tls-key", "/etc/credsign/tls.key"]
