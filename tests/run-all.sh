#!/usr/bin/env bash
# `make test`: every check the project has, in order, failing on the first red step.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" test || exit 1

# Each step must pass; the last line counts them in the plain "N passed, N failed" form.
steps_passed=0
current=""
step() {
  [[ -n $current ]] && steps_passed=$((steps_passed + 1))
  current="$*"
  printf '\n=== %s ===\n' "$*"
}
trap 'rc=$?; if ((rc != 0)); then printf "\nmake test: step failed: %s\nmake test: %d passed, 1 failed\n" "$current" "$steps_passed"; fi' EXIT

step "toolchain"
cargo --version

step "rustfmt"
cargo fmt --all -- --check

step "module layering: no module uses one that uses it back"
python3 tests/lint/test_module_cycles.py
python3 tests/lint/module_cycles.py kvproto kvserver kvclient operator tests/e2e fuzz

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
# E2E_SUITES lists the test files of tests/e2e/tests to run (cargo runs them in name order, one
# test at a time); faults is `make faults`, whose cases each restore the node before they end.
E2E_SUITES="${E2E_SUITES:-operator rebalance hardening faults}" tests/e2e/run.sh

steps_passed=$((steps_passed + 1))
printf '\nmake test: %d passed, 0 failed\n' "$steps_passed"
