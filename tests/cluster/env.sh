#!/usr/bin/env bash
# Print the environment for using the local cluster: eval "$(make cluster-env)".
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [[ ${KVSTORE_CLUSTER:-local} == existing ]]; then
  echo "export KUBECONFIG=${KUBECONFIG:?KVSTORE_CLUSTER=existing needs KUBECONFIG}"
  exit 0
fi
echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
echo "export PATH=$BIN_DIR:\$PATH  # kubectl $K8S_VERSION"
echo "export KVSTORE_CONTAINERD_SOCK=$CONTAINERD_SOCK"
# A cluster of several nodes (see nodes.sh) says how many.
if [[ -f $NODES_DIR/count ]]; then echo "export KVSTORE_NODES=$(cat "$NODES_DIR/count")"; fi
echo "# logs: $LOG_DIR"
