#!/usr/bin/env bash
# The cluster-backed part of `make test`: bring up the local cluster (unless
# KVSTORE_CLUSTER=existing), smoke-test it, build and import the images, install the operator with
# its Helm chart, run the e2e suites, and tear the local cluster down again.
#
# usage: tests/e2e/run.sh [CARGO_TEST_FILTER...]
#   KEEP_CLUSTER=1   leave the local cluster running afterwards
#   E2E_SUITES="operator rebalance"   which test files of tests/e2e/tests to run (default: all)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export KVSTORE_CACHE="${KVSTORE_CACHE:-$HOME/.cache/kvstore-operator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KVSTORE_CACHE/cargo-target}"
OPERATOR_NS=kvstore-system

log() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

local_cluster=0
if [[ ${KVSTORE_CLUSTER:-local} != existing ]]; then
  local_cluster=1
  tests/cluster/up.sh
fi
eval "$(tests/cluster/env.sh)"
[[ -n ${KUBECONFIG:-} ]] || { log "no KUBECONFIG: no cluster to test on"; exit 1; }

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
if ((local_cluster)); then
  tests/images/build.sh
else
  tests/images/build.sh
  tests/images/build.sh push "${KVSTORE_IMAGE_REGISTRY:?KVSTORE_CLUSTER=existing needs KVSTORE_IMAGE_REGISTRY}"
fi

registry="${KVSTORE_IMAGE_REGISTRY:-kvstore}"
tag="${KVSTORE_IMAGE_TAG:-dev}"
helm=$(tests/chart/check.sh --helm-path 2>/dev/null)
export HELM_CACHE_HOME="$KVSTORE_CACHE/helm/cache" HELM_CONFIG_HOME="$KVSTORE_CACHE/helm/config" HELM_DATA_HOME="$KVSTORE_CACHE/helm/data"
log "installing the operator with $helm"
"$helm" upgrade --install kvstore-operator charts/kvstore-operator \
  --namespace "$OPERATOR_NS" --create-namespace \
  --set image.repository="$registry/operator" --set image.tag="$tag" \
  --wait --timeout 5m
# A reinstall with the same tag must still run the freshly imported image.
kubectl -n "$OPERATOR_NS" rollout restart deployment/kvstore-operator
kubectl -n "$OPERATOR_NS" rollout status deployment/kvstore-operator --timeout=180s

suites=(${E2E_SUITES:-})
args=()
if ((${#suites[@]})); then
  for s in "${suites[@]}"; do args+=(--test "$s"); done
else
  args+=(--tests)
fi
log "e2e suites: cargo test -p e2e ${args[*]}"
KVSTORE_IMAGE_REGISTRY="$registry" KVSTORE_IMAGE_TAG="$tag" \
  cargo test -p e2e --locked "${args[@]}" -- --test-threads=1 "$@"
log "operator cluster tests (API server validation, scale subresource, pause, a scale through the operator)"
cargo test -p operator --locked --test cluster -- --ignored --test-threads=1
