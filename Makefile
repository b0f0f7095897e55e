# ucprelay — see README.md. Every target either does its work or says why it cannot and fails.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/ucprelay/ucprelay/internal/buildinfo.Version=$(VERSION)
TOOL      := $(GO) tool -modfile=tools/go.mod
PKGS      := ./...

.PHONY: build test test-unit shared-check lint fmt bench fuzz chaos demo kafka-up kafka-down docker helm-lint clean help

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/ucprelay
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ucprelay ./cmd/ucprelay

test: ## make lint, then start real Kafka (fetched with mvn, cached), run every test with -race -shuffle=on, stop Kafka
	scripts/test.sh

test-unit: ## run the tests that need no broker (-short)
	$(GO) test -race -shuffle=on -short -count=1 $(PKGS)

SHARED ?= ../shared
shared-check: ## compare the copies of ../shared (testdata/ucp-examples, the schemas embedded in pkg/ucpschema) with it byte for byte; fails naming each file that differs or is missing on either side
	scripts/shared-check.sh $(SHARED)

lint: ## go vet, staticcheck and golangci-lint (pinned in tools/go.mod)
	$(GO) vet $(PKGS)
	$(TOOL) staticcheck $(PKGS)
	$(TOOL) golangci-lint run $(PKGS)
	cd bench && $(GO) vet ./... && $(GO) tool -modfile=../tools/go.mod staticcheck ./...

fmt: ## gofmt and goimports-style formatting
	gofmt -s -w $$(git ls-files '*.go')

bench: ## ucprelay vs the limits (raw consume, raw HTTP) and the Watermill peer on the real broker: table of medians and ratios, fails below bench/thresholds.json; then the hot-path micro-benchmarks
	scripts/with-kafka.sh sh -c 'cd bench && $(GO) run ./cmd/ucprelay-bench -thresholds thresholds.json -out ../.cache/bench-table.md $(BENCH_ARGS)'
	scripts/with-kafka.sh $(GO) test -run '^$$' -bench . -benchmem -count 3 -timeout 30m ./pkg/... ./internal/... | tee .cache/bench-micro.out
	$(TOOL) benchstat .cache/bench-micro.out

chaos: ## three relays, a broker of their own, every fault (kill -9, broker restart, 5xx, 60 s outage, slow partner, rebalance storm, growth, poison, dlq replay); report; fails on a broken promise (≤ 10 min)
	$(GO) run ./internal/chaos/cmd/chaos $(CHAOS_ARGS)

FUZZTIME ?= 5m
fuzz: ## each fuzz target for FUZZTIME (default 5m): decoder, fold, sink request parsing, state records; crashers land in testdata/fuzz and run in make test
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/avrocodec
	$(GO) test -run '^$$' -fuzz '^FuzzFold$$' -fuzztime $(FUZZTIME) ./pkg/ucp/fold
	$(GO) test -run '^$$' -fuzz '^FuzzSinkRequest$$' -fuzztime $(FUZZTIME) ./internal/sink
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshal$$' -fuzztime $(FUZZTIME) ./internal/statestore

demo: ## the whole flow on an embedded broker with a local validating sink; exits by itself
	$(GO) run ./cmd/ucprelay demo $(DEMO_ARGS)

kafka-up: ## start the test broker on 127.0.0.1:39092 (then export UCPRELAY_TEST_BROKERS=127.0.0.1:39092)
	scripts/kafka.sh up
	@echo "export UCPRELAY_TEST_BROKERS=$$(scripts/kafka.sh brokers) UCPRELAY_TEST_SASL_BROKERS=$$(scripts/kafka.sh sasl-brokers) UCPRELAY_TEST_TLS_BROKERS=$$(scripts/kafka.sh tls-brokers) UCPRELAY_TEST_TLS_DIR=$$(scripts/kafka.sh tls-dir)"

kafka-down: ## stop the test broker
	scripts/kafka.sh down

docker: ## build the container image (needs a Docker engine)
	@command -v docker >/dev/null || { echo "docker: no docker client on this machine"; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "docker: no Docker engine reachable; build the image where one runs (README, Deployment)"; exit 1; }
	docker build --build-arg VERSION=$(VERSION) -t ucprelay:$(VERSION) .

helm-lint: ## helm lint --strict, helm template, and the chart's rendering tests (helm from tools/go.mod)
	$(TOOL) helm lint --strict helm/ucprelay
	$(TOOL) helm template ucprelay helm/ucprelay >/dev/null
	$(GO) test -count=1 ./helm/...

clean: ## remove build output (keeps the Kafka jar cache)
	rm -rf bin bench.out
