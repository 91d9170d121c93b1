#!/usr/bin/env bash
# `make test`: every check the project has, in order, failing on the first red step.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" test || exit 1

# Each step must pass; the last line counts them in the plain "N passed, N failed" form.
steps_passed=0
current=""
# Each step's wall time is printed as it ends (the CI budget is counted from these lines).
step_started=$SECONDS
step() {
  if [[ -n $current ]]; then
    steps_passed=$((steps_passed + 1))
    printf '=== %s: %ds (total %ds) ===\n' "$current" $((SECONDS - step_started)) "$SECONDS"
  fi
  current="$*"
  step_started=$SECONDS
  printf '\n=== %s ===\n' "$*"
}
trap 'rc=$?; if ((rc != 0)); then printf "\nmake test: step failed: %s\nmake test: %d passed, 1 failed\n" "$current" "$steps_passed"; fi' EXIT

step "toolchain"
cargo --version
# Incremental caches help a fresh clone (they key on contents, not mtimes) but are never
# collected: those untouched for 3 days go (they had grown the shared target dir by 29 GiB).
find "$CARGO_TARGET_DIR"/*/incremental -mindepth 1 -maxdepth 1 -mtime +3 -exec rm -rf {} + 2>/dev/null || true
# The cluster's kubelet evicts every pod below 1% free disk: say so before a suite times out.
free_gib=$(df --output=avail -BG "$KVSTORE_CACHE" 2>/dev/null | tail -1 | tr -dc '0-9')
if [[ -n $free_gib ]] && ((free_gib < 15)); then
  log "only ${free_gib} GiB free under $KVSTORE_CACHE: builds and the cluster need about 15 GiB (prune $CARGO_TARGET_DIR)"
fi

step "rustfmt"
cargo fmt --all -- --check

step "module layering: no module uses one that uses it back"
python3 tests/lint/test_module_cycles.py
python3 tests/lint/module_cycles.py kvproto kvserver kvclient operator tests/e2e fuzz kvraft

step "clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build (binaries used by the integration tests)"
cargo build --workspace --locked --bins

step "unit and integration tests (CRD drift included)"
cargo test --workspace --locked --exclude e2e

step "linearizability checker: its own tests on hand-made histories"
cache="${KVSTORE_CACHE:-$HOME/.cache/kvstore-operator}"
(cd tests/linearizability && GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" \
  GOFLAGS=-mod=readonly PATH="/usr/local/go/bin:$PATH" go test ./...)

step "linearizability checker catches the deliberately broken build (kvserver --unsafe-ack=local)"
# The feature build recompiles kvraft and kvserver only; release images never enable it.
cargo clippy -p kvserver --features unsafe-fault-modes --all-targets --locked -- -D warnings
cargo test -p kvserver --features unsafe-fault-modes --locked --test raft_broken

step "benchmark parsers: their unit tests (the benchmarks themselves run in make bench)"
python3 tests/bench/test_repl.py

step "chart: CRD copy, helm lint, kubeconform, linters"
tests/chart/check.sh

step "fuzz (short budget; make fuzz runs longer)"
# FUZZ_BUILD=dev FUZZ_SANITIZER=none would cut the cold build (not yet measured; see
# tests/fuzz/run.sh); until measured, make test runs the same build as make fuzz.
tests/fuzz/run.sh "${FUZZ_SECONDS:-20}"

step "e2e on the local cluster: smoke test, images, Helm install, suites"
# E2E_SUITES lists the test files of tests/e2e/tests to run (cargo runs them in name order, one
# test at a time). To stay within CI's budget make test leaves out the long cases that another
# kept case represents (E2E_SKIP); `make faults` runs every fault case and `make e2e` every case.
#   operator_killed_in_every_phase      (kept: faults::operator_killed_during_copy)
#   unreachable_shard_blocks_scale_down (kept: rebalance::shard_pod_deleted_during_copy)
#   kvserver_pod_deleted_under_load     (kept: faults::kill9_kvserver_under_load, and the SIGTERM
#                                        drain on loopback in kvserver/tests/lifecycle.rs)
#   replicas_changed_during_a_rebalance (kept: rebalance::scale_up_retargeted_before_handoff_leaves_no_volume,
#                                        the same retarget of a move under way)
#   replicated_store_keeps_every_write_through_follower_faults, ..._rescaling (issue 14 cases 3
#                                        and 5; kept: replication::..._leader_faults, cases 0-2
#                                        and 4 with the checker); the replication_faults suite
#                                        (cases 6-8) runs in make faults and make e2e only
E2E_SKIP="${E2E_SKIP-operator_killed_in_every_phase unreachable_shard_blocks_scale_down kvserver_pod_deleted_under_load replicas_changed_during_a_rebalance replicated_store_keeps_every_write_through_follower_faults replicated_store_keeps_every_write_through_rescaling}" \
  E2E_SUITES="${E2E_SUITES:-operator rebalance hardening faults replication}" tests/e2e/run.sh

steps_passed=$((steps_passed + 1))
printf '=== %s: %ds (total %ds) ===\n' "$current" $((SECONDS - step_started)) "$SECONDS"
printf '\nmake test: %d passed, 0 failed\n' "$steps_passed"
