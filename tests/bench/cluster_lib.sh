# shellcheck shell=bash
# Helpers shared by the cluster benchmarks (cluster_setup.sh, scale_e2e.sh, cluster_load.sh,
# footprint.sh). Sourced, not run, after `source tests/lib/common.sh bench` (the repo root is
# the working directory, log() tags its lines "bench"); the images come from tests/lib/deploy.sh
# ($IMAGE_REGISTRY, $IMAGE_TAG). The helpers below need kubectl on PATH (cluster_env) and the
# operator installed.

# shellcheck source=tests/lib/deploy.sh
source tests/lib/deploy.sh

# bench_namespace NS: a fresh namespace with the ServiceAccount `kvclient` that may read
# KVStores (what the topology-following client needs, as in examples/client-follow.yaml).
bench_namespace() {
  local ns=$1
  kubectl delete namespace "$ns" --ignore-not-found --wait=true --timeout=180s >/dev/null
  kubectl create namespace "$ns" >/dev/null
  kubectl label namespace "$ns" app.kubernetes.io/part-of=kvstore-bench >/dev/null
  kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: kvclient}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: kvstore-reader}
rules:
  - apiGroups: ["kvstore.dev"]
    resources: ["kvstores"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: kvclient-kvstore-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: kvstore-reader}
subjects:
  - {kind: ServiceAccount, name: kvclient, namespace: $ns}
EOF
}

# bench_store NS NAME REPLICAS [SIZE [SPEC_LINE...]]: a KVStore like examples/kvstore.yaml
# (modulo, as the book), whose volumes (SIZE each, default 1Gi) go with it; each SPEC_LINE
# (e.g. "durability: always") is one more field of its spec.
bench_store() {
  local ns=$1 name=$2 replicas=$3 size=${4:-1Gi} extra="" line
  shift $(($# < 4 ? $# : 4))
  for line in "$@"; do extra+=$'\n'"  $line"; done
  kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: kvstore.dev/v1alpha1
kind: KVStore
metadata: {name: $name}
spec:
  replicas: $replicas
  image: $IMAGE_REGISTRY/kvserver:$IMAGE_TAG
  imagePullPolicy: IfNotPresent
  sharding: modulo
  storage: {size: $size, retentionPolicy: Delete}$extra
EOF
}

# bench_replicated_store NS NAME SHARDS FACTOR DURABILITY [SIZE]: bench_store's store with
# spec.replication.factor and spec.durability (the kvserver's --sync: batch or always); fails
# when the installed CRD drops the factor (an operator without replication).
bench_replicated_store() {
  local kept
  bench_store "$1" "$2" "$3" "${6:-1Gi}" "durability: $5" "replication: {factor: $4}"
  kept=$(kubectl -n "$1" get kvs "$2" -o jsonpath='{.spec.replication.factor}')
  if [[ $kept != "$4" ]]; then
    log "KVStore $1/$2 kept spec.replication.factor as '${kept}', not $4: the installed operator has no replication"
    return 1
  fi
}

# bench_cleanup_on_exit NS DIR: when the script exits, namespace NS is deleted (unless
# KEEP_NS=1) and DIR removed; the exit code is kept.
bench_cleanup_on_exit() {
  BENCH_CLEANUP_NS=$1 BENCH_CLEANUP_DIR=$2
  trap bench_cleanup EXIT
}
# shellcheck disable=SC2317  # called by the EXIT trap
bench_cleanup() {
  local rc=$?
  if [[ ${KEEP_NS:-0} != 1 ]]; then kubectl delete namespace "$BENCH_CLEANUP_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true; fi
  rm -rf "$BENCH_CLEANUP_DIR"
  exit "$rc"
}

# bench_wait_available NS NAME N [TIMEOUT_S]: until the store serves N shards, Available, with
# no move in flight and its latest generation observed.
bench_wait_available() {
  local ns=$1 name=$2 want=$3 limit=${4:-600} gen obs phase replicas rb
  local deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    read -r gen obs phase replicas rb < <(kubectl -n "$ns" get kvs "$name" -o \
      jsonpath='{.metadata.generation} {.status.observedGeneration} {.status.phase} {.status.replicas} {.status.rebalance.phase}{"\n"}' 2>/dev/null || echo) || true
    if [[ ${gen:-x} == "${obs:-y}" && ${phase:-} == Available && ${replicas:-} == "$want" && -z ${rb:-} ]]; then
      return 0
    fi
    sleep 1
  done
  log "KVStore $ns/$name did not become Available with $want shards in ${limit}s"
  kubectl -n "$ns" describe kvs "$name" >&2 || true
  return 1
}

# bench_client_pod NS NAME ARG...: a kvclient pod (restartPolicy Never) under the `kvclient`
# ServiceAccount, hardened like the e2e client pods; resources left to the namespace defaults.
bench_client_pod() {
  local ns=$1 name=$2; shift 2
  local args; args=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@")
  kubectl -n "$ns" delete pod "$name" --ignore-not-found --wait=true >/dev/null
  kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $name
  labels: {app.kubernetes.io/name: kvclient, app.kubernetes.io/part-of: kvstore-bench}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 120
  serviceAccountName: kvclient
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: client
      image: $IMAGE_REGISTRY/kvclient:$IMAGE_TAG
      imagePullPolicy: IfNotPresent
      args: $args
      env:
        - name: KVCLIENT_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: ["ALL"]}
EOF
}

# bench_wait_running NS POD: until the pod's container has started (or already ended).
bench_wait_running() {
  local phase
  for _ in $(seq 1 240); do
    phase=$(kubectl -n "$1" get pod "$2" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    case $phase in Running | Succeeded | Failed) return 0 ;; esac
    sleep 0.5
  done
  log "pod $1/$2 did not start"; kubectl -n "$1" describe pod "$2" >&2 || true
  return 1
}

# bench_wait_exit NS POD TIMEOUT_S: until the pod's container has exited; prints its exit code.
bench_wait_exit() {
  local code deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    code=$(kubectl -n "$1" get pod "$2" -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}' 2>/dev/null || true)
    if [[ -n $code ]]; then echo "$code"; return 0; fi
    sleep 1
  done
  log "pod $1/$2 did not finish within $3 s"
  return 1
}

# bench_client_json NS POD TIMEOUT_S ARG...: a kvclient pod (bench_client_pod) run to its end;
# its last JSON line (the `--json` report) on stdout. Fails with the log's tail if it exits
# non-zero.
bench_client_json() {
  local ns=$1 pod=$2 limit=$3 code; shift 3
  bench_client_pod "$ns" "$pod" "$@"
  code=$(bench_wait_exit "$ns" "$pod" "$limit") || return 1
  if [[ $code != 0 ]]; then
    log "$pod exited $code:"; kubectl -n "$ns" logs "$pod" | tail -n 20 >&2; return 1
  fi
  kubectl -n "$ns" logs "$pod" | grep '^{' | tail -n 1
}

# bench_screen_counts LOG: the last compact round line of a screen-mode kvclient
# ("MM:SS h=H w=W m=M x=X .=U [d=N...] | hits = ..."), as JSON {"h": H, "w": W, ...}.
bench_screen_counts() {
  python3 - "$1" <<'PY'
import json, re, sys
lines = [l for l in sys.argv[1].splitlines() if re.match(r"^\d\d:\d\d h=", l)]
if not lines:
    sys.exit("no round line in the client's log")
counts = {k: int(v) for k, v in re.findall(r"(\S+)=(\d+)", lines[-1].split("|")[0])}
print(json.dumps(counts))
PY
}
