#!/usr/bin/env bash
# `make test`: every check the project has, in order, failing on the first red step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s ===\n' "$*"; }

step "toolchain"
cargo --version

step "rustfmt"
cargo fmt --all -- --check

step "clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build (binaries used by the integration tests)"
cargo build --workspace --locked --bins

step "unit and integration tests (CRD drift included)"
cargo test --workspace --locked --exclude e2e

step "chart: CRD copy, helm lint, kubeconform, linters"
tests/chart/check.sh

step "fuzz (short budget; make fuzz runs longer)"
tests/fuzz/run.sh "${FUZZ_SECONDS:-20}"

step "e2e on the local cluster: smoke test, images, Helm install, suites"
# E2E_SUITES lists the test files of tests/e2e/tests to run.
E2E_SUITES="${E2E_SUITES:-operator}" tests/e2e/run.sh
