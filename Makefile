# The two commands a newcomer needs are `make run` and `make test`.

CARGO ?= cargo
# Tests that need PostgreSQL or Redis read these; `make test` makes sure both answer.
export POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export REDIS_TEST_URL ?= redis://127.0.0.1:6379
# Seconds each flag-engine fuzz target runs in `make fuzz` and in the short pass of `make bench`.
FUZZ_SECONDS ?= 30

.PHONY: run test lint fmt fuzz-api bench-keys bench bench-config bench-flags-engine bench-flags-server bench-realtime bench-presence bench-experiments bench-delivery fuzz proto migrate build

## run: build and start all five services in one process (switchyard dev)
run:
	$(CARGO) run --bin switchyard -- dev

## test: start PostgreSQL and Redis if needed, then run every test
test:
	./scripts/ensure-backing-services.sh
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		echo "cargo-nextest not found; using cargo test"; \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## fuzz-api: schemathesis (pinned, installed into target/fuzz-api) against every service's
## /openapi.json in a fresh switchyard dev; FUZZ_API_SECONDS per service (default 100)
FUZZ_API_SECONDS ?= 100
fuzz-api:
	./scripts/fuzz-api.sh $(FUZZ_API_SECONDS)

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## build: release binaries for every service and the CLI
build:
	$(CARGO) build --release --workspace --bins

## bench: criterion benchmarks; results land in bench/results/. Then a short fuzz pass over flag-engine (see fuzz)
bench:
	$(CARGO) bench --workspace
	./scripts/fuzz-flag-engine.sh $(FUZZ_SECONDS)

## bench-delivery: progressive delivery against real processes — shares at each step for 1,000
## watchers, rollback time on a failing gate, takeover after kill -9 (bench/results/delivery.json)
bench-delivery:
	./scripts/ensure-backing-services.sh
	$(CARGO) bench -p config-service --bench rollout

## bench-config: config-service's data plane against etcd (installs etcd-server if missing)
bench-config:
	./scripts/bench-config-service.sh

## bench-flags-server: flag-service's ResolveBoolean (gRPC) and OFREP under load, and propagation to another replica's subscribers (PostgreSQL + Redis)
bench-flags-server:
	./scripts/ensure-backing-services.sh
	$(CARGO) bench -p flag-service --bench load

## bench-flags-engine: flag-engine against unleash-yggdrasil (Rust) and @openfeature/flagd-core (Node); ROUNDS=3 to alternate
bench-flags-engine:
	./scripts/bench-flag-engine.sh

## bench-keys: how fast a key created or revoked in the key store reaches flag-service (bench/results/key-propagation.json)
bench-keys:
	$(CARGO) build --bin switchyard
	python3 scripts/bench-key-propagation.py

## bench-realtime: realtime-gateway's memory per idle connection (50,000) and fan-out beside a Socket.IO 4 server; REALTIME_BENCH_QUICK=1 for a short run
bench-realtime:
	./scripts/bench-realtime.sh

## bench-presence: presence-service churn (events/s, Redis commands per event), idle cost beside a Centrifugo-style baseline, query p99s and node-death latency (bench/results/presence-service.json); PRESENCE_BENCH_QUICK=1 for a short run
bench-presence:
	./scripts/ensure-backing-services.sh
	$(CARGO) bench -p presence-service --bench presence

## bench-experiments: experiment-service LogEvents ingestion into PostgreSQL (events/s, batches of 500), aggregation lag, GetResults p99, rebuild and Assign (bench/results/experiment-service.json); then 1M units × 3 arms × 5 metrics (GetResults p99, rebuild) and propagation of a start to 200 flagd providers (experiment-service-scale.json); EXPERIMENT_BENCH_QUICK=1 for a short run
bench-experiments:
	./scripts/ensure-backing-services.sh
	$(CARGO) bench -p experiment-service --bench ingestion
	$(CARGO) bench -p experiment-service --bench scale

## fuzz: flag-engine's cargo-fuzz targets, FUZZ_SECONDS each (default 30); installs cargo-fuzz if missing, fails on any crash, timeout or oom
fuzz:
	./scripts/fuzz-flag-engine.sh $(FUZZ_SECONDS)

## proto: regenerate the API crate from proto/ (it also happens on every build)
proto:
	$(CARGO) build -p switchyard-api

## migrate: apply every service's migrations to the databases the settings name
migrate:
	$(CARGO) run --bin switchyard -- migrate
