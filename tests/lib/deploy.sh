# shellcheck shell=bash
# The project on a cluster, as make demo, the e2e suites and the cluster benchmarks put it
# there: the images, and the operator from its Helm chart. Sourced after tests/lib/common.sh
# (the repo root is the working directory, cluster_env has run).
#
#   KVSTORE_IMAGE_REGISTRY (default kvstore), KVSTORE_IMAGE_TAG (default dev): where the
#   cluster pulls the images from (IMAGE_REGISTRY, IMAGE_TAG here).

IMAGE_REGISTRY="${KVSTORE_IMAGE_REGISTRY:-kvstore}"
IMAGE_TAG="${KVSTORE_IMAGE_TAG:-dev}"
OPERATOR_NS=kvstore-system

# deploy_images: cargo build --release and the OCI images (tests/images/build.sh), imported
# into the local cluster; with KVSTORE_CLUSTER=existing also pushed to KVSTORE_IMAGE_REGISTRY.
deploy_images() {
  tests/images/build.sh
  if [[ ${KVSTORE_CLUSTER:-local} == existing ]]; then
    tests/images/build.sh push "${KVSTORE_IMAGE_REGISTRY:?KVSTORE_CLUSTER=existing needs KVSTORE_IMAGE_REGISTRY}"
  fi
}

# helm_install_operator: helm upgrade --install of charts/kvstore-operator as release
# kvstore-operator in $OPERATOR_NS, image $IMAGE_REGISTRY/operator:$IMAGE_TAG, waiting until
# it is ready. Helm's report (with the chart's NOTES) goes to stdout; helm keeps its state in
# the cache. The helm binary is the one tests/chart/check.sh builds and lints the chart with.
helm_install_operator() {
  local helm
  helm=$(tests/chart/check.sh --helm-path 2>/dev/null)
  export HELM_CACHE_HOME="$KVSTORE_CACHE/helm/cache" HELM_CONFIG_HOME="$KVSTORE_CACHE/helm/config" HELM_DATA_HOME="$KVSTORE_CACHE/helm/data"
  log "installing the operator with $helm (helm upgrade --install into $OPERATOR_NS, image $IMAGE_REGISTRY/operator:$IMAGE_TAG)"
  "$helm" upgrade --install kvstore-operator charts/kvstore-operator \
    --namespace "$OPERATOR_NS" --create-namespace \
    --set image.repository="$IMAGE_REGISTRY/operator" --set image.tag="$IMAGE_TAG" \
    --wait --timeout 5m
}

# restart_operator: a reinstall with the same tag must still run the freshly imported image,
# so the Deployment is restarted and followed until it has rolled out (kubectl's progress on
# stdout).
restart_operator() {
  kubectl -n "$OPERATOR_NS" rollout restart deployment/kvstore-operator >/dev/null
  kubectl -n "$OPERATOR_NS" rollout status deployment/kvstore-operator --timeout=180s
}
