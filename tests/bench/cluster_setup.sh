#!/usr/bin/env bash
# The cluster side of the benchmarks, as tests/e2e/run.sh prepares it: the local cluster up
# (unless KVSTORE_CLUSTER=existing), the images built and imported, the operator installed
# with its Helm chart and restarted on the fresh image.
#
# usage: tests/bench/cluster_setup.sh
#   BENCH_SKIP_IMAGES=1   reuse the images already imported (and the binaries already built)
# Prints "brought-up" on stdout when it started the local cluster itself (so the caller
# knows whether it may take it down again), nothing otherwise.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export KVSTORE_CACHE="${KVSTORE_CACHE:-$HOME/.cache/kvstore-operator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KVSTORE_CACHE/cargo-target}"
# shellcheck source=tests/bench/cluster_lib.sh
source tests/bench/cluster_lib.sh

if [[ ${KVSTORE_CLUSTER:-local} != existing ]]; then
  was_up=0
  if eval "$(tests/cluster/env.sh 2>/dev/null)" 2>/dev/null && kubectl get --raw /readyz >/dev/null 2>&1; then
    was_up=1
  fi
  # A cluster whose API answers is used as it is: up.sh would restart one it finds unhealthy,
  # e.g. while another user of this shared cluster restarts the kubelet on purpose.
  if ((was_up)); then
    blog "the local cluster is up: using it"
  else
    tests/cluster/up.sh >&2
    echo brought-up
  fi
fi
eval "$(tests/cluster/env.sh)"
[[ -n ${KUBECONFIG:-} ]] || { blog "no KUBECONFIG: no cluster to benchmark on"; exit 1; }

if [[ ${BENCH_SKIP_IMAGES:-0} != 1 ]]; then
  blog "images (tests/images/build.sh)"
  tests/images/build.sh >&2
  if [[ ${KVSTORE_CLUSTER:-local} == existing ]]; then
    tests/images/build.sh push "${KVSTORE_IMAGE_REGISTRY:?KVSTORE_CLUSTER=existing needs KVSTORE_IMAGE_REGISTRY}" >&2
  fi
fi

helm=$(tests/chart/check.sh --helm-path 2>/dev/null)
export HELM_CACHE_HOME="$KVSTORE_CACHE/helm/cache" HELM_CONFIG_HOME="$KVSTORE_CACHE/helm/config" HELM_DATA_HOME="$KVSTORE_CACHE/helm/data"
blog "operator (helm upgrade --install into kvstore-system)"
"$helm" upgrade --install kvstore-operator charts/kvstore-operator \
  --namespace kvstore-system --create-namespace \
  --set image.repository="$BENCH_REGISTRY/operator" --set image.tag="$BENCH_TAG" \
  --wait --timeout 5m >&2
# A reinstall with the same tag must still run the freshly imported image.
kubectl -n kvstore-system rollout restart deployment/kvstore-operator >&2
kubectl -n kvstore-system rollout status deployment/kvstore-operator --timeout=180s >&2
