#!/usr/bin/env bash
# The cluster side of the benchmarks, as tests/e2e/run.sh prepares it: the local cluster up
# (unless KVSTORE_CLUSTER=existing), the images built and imported, the operator installed
# with its Helm chart and restarted on the fresh image.
#
# usage: tests/bench/cluster_setup.sh
#   BENCH_SKIP_IMAGES=1   reuse the images already imported (and the binaries already built)
# Prints "brought-up" on stdout when it started the local cluster itself (so the caller
# knows whether it may take it down again), nothing otherwise.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
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
    log "the local cluster is up: using it"
  else
    tests/cluster/up.sh >&2
    echo brought-up
  fi
fi
cluster_env "benchmark on"

# Stdout carries only "brought-up": everything else goes to stderr.
if [[ ${BENCH_SKIP_IMAGES:-0} != 1 ]]; then
  log "images (tests/images/build.sh)"
  deploy_images >&2
fi

helm_install_operator >&2
restart_operator >&2
