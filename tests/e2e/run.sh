#!/usr/bin/env bash
# The cluster-backed part of `make test`: bring up the local cluster (unless
# KVSTORE_CLUSTER=existing), smoke-test it, build and import the images, install the operator with
# its Helm chart, run the e2e suites, and tear the local cluster down again.
#
# usage: tests/e2e/run.sh [CARGO_TEST_FILTER...]
#   KEEP_CLUSTER=1   leave the local cluster running afterwards
#   E2E_SUITES="operator rebalance"   which test files of tests/e2e/tests to run (default: all,
#                    and the harness's unit tests)
#   E2E_SKIP="name ..."   test names to leave out (libtest --skip; make test leaves out its long cases)
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" e2e || exit 1
# shellcheck source=tests/lib/deploy.sh
source tests/lib/deploy.sh

local_cluster=0
if [[ ${KVSTORE_CLUSTER:-local} != existing ]]; then
  local_cluster=1
  tests/cluster/up.sh
fi
cluster_env "test on"

cleanup() {
  local rc=$?
  if ((rc != 0)); then
    log "FAILED (exit $rc): operator state and logs follow"
    kubectl -n "$OPERATOR_NS" get pods -o wide >&2 || true
    kubectl -n "$OPERATOR_NS" logs -l app.kubernetes.io/name=kvstore-operator --tail=80 >&2 || true
    if ((local_cluster)); then
      for f in "${KVSTORE_STATE:-/var/lib/kvstore-cluster}"/logs/*.log; do
        [[ -f $f ]] || continue
        log "--- tail of $f"; tail -n 15 "$f" >&2
      done
    fi
  fi
  if ((local_cluster)) && [[ ${KEEP_CLUSTER:-0} != 1 ]]; then
    tests/cluster/down.sh || log "cluster-down reported an error"
  fi
  exit $rc
}
trap cleanup EXIT

if ((local_cluster)); then
  log "smoke test of the local cluster"
  tests/cluster/smoke-test.sh
fi

log "images"
deploy_images

helm_install_operator
restart_operator

read -r -a suites <<<"${E2E_SUITES:-}"
args=()
if ((${#suites[@]})); then
  for s in "${suites[@]}"; do args+=(--test "$s"); done
else
  args+=(--tests)
fi
read -r -a skipped <<<"${E2E_SKIP:-}"
skip_args=()
for name in "${skipped[@]}"; do skip_args+=(--skip "$name"); done
log "e2e suites: cargo test -p e2e ${args[*]} -- ${skip_args[*]}"
mkdir -p "$KVSTORE_CACHE/e2e"
E2E_TIMINGS="$KVSTORE_CACHE/e2e/timings-$(date -u +%Y%m%dT%H%M%SZ).tsv"
export E2E_TIMINGS
print_timings() { [[ -f $E2E_TIMINGS ]] && log "seconds per case ($E2E_TIMINGS):" && sort -t$'\t' -k2,2nr "$E2E_TIMINGS" >&2; }
KVSTORE_IMAGE_REGISTRY="$IMAGE_REGISTRY" KVSTORE_IMAGE_TAG="$IMAGE_TAG" \
  cargo test -p e2e --locked "${args[@]}" -- --test-threads=1 "${skip_args[@]}" "$@" || { print_timings; exit 1; }
print_timings || true
log "operator cluster tests (API server validation, scale subresource, pause, a scale through the operator)"
cargo test -p operator --locked --test cluster -- --ignored --test-threads=1
