# kvstore-operator: every entry point a user or CI needs. `make test` is what .ci/run calls.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Build outputs live outside the clone so a fresh clone (and CI) reuses them.
export KVSTORE_CACHE ?= $(HOME)/.cache/kvstore-operator
export CARGO_TARGET_DIR ?= $(KVSTORE_CACHE)/cargo-target

.PHONY: help test demo cluster-up cluster-down cluster-env images build

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

test: ## Everything: lint, unit, integration, CRD drift, chart, e2e on the local cluster
	tests/run-all.sh

demo: ## Bring up the local cluster, install the operator, scale a store while a client watches
	tests/demo.sh

build: ## Build the Rust workspace (release)
	cargo build --release --workspace --locked

cluster-up: ## Build (cached) and start the local single-node Kubernetes
	tests/cluster/up.sh

cluster-down: ## Stop the local cluster and remove everything it created
	tests/cluster/down.sh

cluster-env: ## Print `export KUBECONFIG=...` for the local cluster
	@tests/cluster/env.sh

images: ## Build OCI images of the project's binaries without a daemon and import them
	tests/images/build.sh

.PHONY: fuzz bench faults e2e bench-kvserver bench-profile bench-migration bench-load bench-cost bench-replication
fuzz: ## Run every fuzz target for 5 minutes (make test runs them for 20 s)
	tests/fuzz/run.sh $${FUZZ_SECONDS:-300}

bench: ## Every shipped benchmark side by side with its baseline; writes BENCHMARKS.md
	tests/bench/run.sh

e2e: ## Every e2e case on the local cluster, the long ones make test leaves out included (KVSTORE_NODES=3: and the nodes suite)
	E2E_SKIP= E2E_SUITES="$${E2E_SUITES:-operator rebalance hardening faults replication replication_faults $$( [ "$${KVSTORE_NODES:-1}" -ge 3 ] && echo nodes)}" tests/e2e/run.sh

faults: ## Fault injection on the local cluster; every case checks that no acknowledged write was lost
	tests/faults/run.sh

bench-kvserver: ## kvserver GET/SET vs redis-server, nginx, the Flask book server and a bare axum server (wrk, redis-benchmark)
	kvserver/bench/run.sh

bench-profile: ## Where kvserver's time goes under the GET and SET loads (perf); prints the JSON path
	kvserver/bench/profile.sh $${TMPDIR:-/tmp}/kvserver-profile.json

bench-migration: ## Migration keys/s of the operator's copy engine vs one HTTP request per key
	tests/bench/migration.sh

bench-load: ## 64 clients for 60 s against a 3-shard store on the local cluster, with a rebalance mid-run
	tests/bench/cluster_load.sh

bench-cost: ## Cost curves: a 3-shard store at 100k, 1M, 10M keys and 1 GiB of 16 KiB values (BENCH_COST_SIZES=...); the rest of make bench skipped
	BENCH_SKIP="kvserver profile instructions migration scale footprint load replication" tests/bench/run.sh

bench-replication: ## Factor 3 beside factor 1: GET/SET req/s and p99, failover, catch-up, rebuild (BENCH_REPL_*=..., BENCH_QUICK=1); the rest of make bench skipped
	BENCH_SKIP="kvserver profile instructions migration scale footprint load cost" tests/bench/run.sh
