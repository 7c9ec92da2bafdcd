# Two static binaries on a minimal base: the service (credsign) and the
# reference agent (credsign-agent). Build: docker build -t credsign .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ ./cmd/credsign ./cmd/credsign-agent

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot
EXPOSE 8443
# Production: give --tls-cert/--tls-key and VAULT_ADDR plus an auth method
# (see docs/vault.md); the admin token comes from CREDSIGN_ADMIN_TOKEN or
# --admin-token-file.
ENTRYPOINT ["/usr/local/bin/credsign"]
CMD ["serve", "--addr", ":8443", "--tls-cert", "/etc/credsign/tls.crt", "--tls-key", "/etc/credsign/tls.key"]
