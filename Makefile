# Developer entry points; CI runs .ci/run, which runs `make test`.
.PHONY: test run build vault bench fuzz load

test: ## every CI check: gofmt, vet, staticcheck, OpenAPI checks, go test -race
	scripts/test.sh

run: ## the service on 127.0.0.1:8080 with the embedded store
	go run ./cmd/credsign serve --dev

build: ## stripped static binaries in bin/
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/ ./cmd/...

vault: ## build (once) and print the path of the Vault 1.13.0 binary the tests use
	scripts/vault.sh

bench: ## the clouds' recipes beside their bare-HMAC baselines
	go test -run '^$$' -bench . -benchmem -count 5 ./cloud/clouds

fuzz: ## a short run of each recipe fuzz target
	for f in FuzzNormalizeParams FuzzRecipes FuzzAppendQueryEscape; do go test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s ./cloud/clouds || exit 1; done

load: ## credential issuance beside a /healthz baseline on a loopback server
	scripts/load.sh
