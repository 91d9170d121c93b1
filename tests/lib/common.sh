# shellcheck shell=bash
# The preamble of the project's entry scripts (make demo, test, faults, bench and their parts):
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" TAG || exit 1
#
# strict mode (set -euo pipefail), the repo root as working directory (REPO_ROOT), the cache
# layout and log() of tests/lib/base.sh with TAG on every line, and cluster_env.

set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
KV_LOG_TAG=${1:?usage: source tests/lib/common.sh LOG_TAG}
# shellcheck source=tests/lib/base.sh
source tests/lib/base.sh

# cluster_env PURPOSE: KUBECONFIG and PATH (kubectl) for the cluster the scripts use: the
# local one, or with KVSTORE_CLUSTER=existing the one KUBECONFIG already points at. Exits
# with "no KUBECONFIG: no cluster to PURPOSE" when there is none.
cluster_env() {
  local purpose=${1:?usage: cluster_env PURPOSE}
  eval "$(tests/cluster/env.sh)"
  [[ -n ${KUBECONFIG:-} ]] || { log "no KUBECONFIG: no cluster to $purpose"; exit 1; }
}
