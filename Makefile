# kvstore-operator: every entry point a user or CI needs. `make test` is what .ci/run calls.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Build outputs live outside the clone so a fresh clone (and CI) reuses them.
export KVSTORE_CACHE ?= $(HOME)/.cache/kvstore-operator
export CARGO_TARGET_DIR ?= $(KVSTORE_CACHE)/cargo-target

.PHONY: help test demo cluster-up cluster-down cluster-env images build crds

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
