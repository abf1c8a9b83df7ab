# llmfleet — `make help` lists the targets.

SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c

GO        ?= go
PKGS      ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 25m -parallel 4
STATICCHECK_VERSION ?= v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build producer, worker and mockllm into bin/
	$(GO) build -trimpath -o bin/ ./cmd/...

.PHONY: redis
redis: ## Make sure redis-server is installed (Debian's package when missing)
	@./scripts/ensure-redis.sh

.PHONY: test
test: redis ## Run every test with -race against real redis-server processes
	$(GO) test $(TESTFLAGS) $(PKGS)

.PHONY: bench
bench: redis ## Print measured figures (throughput, memory); nothing is asserted
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -count 1 ./... 2>&1 | grep -Ev '^(PASS$$|ok |\? )'

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

.PHONY: clean
clean: ## Remove build output
	rm -rf bin/
