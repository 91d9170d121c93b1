#!/usr/bin/env bash
# Smoke test of a local cluster of several nodes (KVSTORE_NODES=N make cluster-up, N >= 2;
# default N = 3): N Ready nodes with zones a, b, c...; one web pod pinned to each node; pod to
# pod across every pair of nodes; a ClusterIP Service reaching the pods of every node from a
# pod on node 1 and from one on the last node; DNS from a pod on the last node; a claim bound
# to a local PV on its pod's node. Never skips. Bounded waits; on failure it prints
# diagnostics and the tail of every component log. Ends with "smoke-nodes: N passed, N failed".
set -Eeuo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${KVSTORE_NODES:-1}
((N >= 2)) || N=3
PASSED=0
CURRENT="preflight"
LABEL=app.kubernetes.io/part-of=kvstore-smoke-nodes
k() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

on_fail() {
  local rc=$?
  trap - ERR
  echo >&2
  echo "SMOKE-NODES TEST FAILED in step: $CURRENT (line $1, exit $rc)" >&2
  echo "----- diagnostics -----" >&2
  k get nodes -o wide -L topology.kubernetes.io/zone >&2 2>&1 || true
  k get pods,pvc,svc -o wide -l "$LABEL" >&2 2>&1 || true
  k describe pods -l "$LABEL" >&2 2>&1 | tail -n 60 || true
  k get events --sort-by=.lastTimestamp >&2 2>&1 | tail -n 30 || true
  dump_logs 20
  echo "smoke-nodes: $PASSED passed, 1 failed" >&2
  exit 1
}
trap 'on_fail $LINENO' ERR

step() { CURRENT=$1; log "step: $1"; }
ok() { PASSED=$((PASSED + 1)); log "ok: $CURRENT"; }
expect_eq() { # expect_eq WHAT GOT WANT
  if [[ $2 != "$3" ]]; then
    echo "expected $1 to be '$3', got '$2'" >&2
    false
  fi
}

# A pod of image webtool on node n: web-n<n> serves, vol-n<n> serves from a claim.
pod_on_node() { # pod_on_node NAME NODE ARGS_JSON [CLAIM]
  local vol="" mount=""
  if [[ -n ${4:-} ]]; then
    vol="volumes: [{name: data, persistentVolumeClaim: {claimName: $4}}]"
    mount="volumeMounts: [{name: data, mountPath: /data}]"
  fi
  cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: $1
  labels: {app: nodes-web, $LABEL_YAML}
spec:
  nodeSelector: {kubernetes.io/hostname: $2}
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true}
  containers:
  - name: web
    image: $WEBTOOL_IMAGE
    imagePullPolicy: Never
    args: $3
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
    $mount
  $vol
EOF
}
LABEL_YAML="${LABEL%%=*}: ${LABEL#*=}"

step "cluster reachable with $N nodes"
k get --raw /readyz >/dev/null 2>&1 || { echo "no cluster: run 'KVSTORE_NODES=$N make cluster-up'" >&2; false; }
got=$(k get nodes --no-headers | wc -l)
expect_eq "number of nodes" "$got" "$N"
ok

step "every node Ready, in zone a, b, c..."
for ((n = 1; n <= N; n++)); do
  k wait --for=condition=Ready "node/$(node_name "$n")" --timeout=60s >/dev/null
  got=$(k get node "$(node_name "$n")" -o jsonpath='{.metadata.labels.topology\.kubernetes\.io/zone}')
  expect_eq "zone of $(node_name "$n")" "$got" "$(node_zone "$n")"
  got=$(k get node "$(node_name "$n")" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
  expect_eq "InternalIP of $(node_name "$n")" "$got" "$(node_ip "$n")"
done
ok

step "clean up objects of an earlier run"
k delete pod,service -l "$LABEL" --ignore-not-found --grace-period=1 --wait=true --timeout=60s >/dev/null
k delete pvc -l "$LABEL" --ignore-not-found --wait=true --timeout=60s >/dev/null
ok

step "one web pod on each node, a ClusterIP Service over them, a claim on the last node"
{
  for ((n = 1; n <= N; n++)); do pod_on_node "web-n$n" "$(node_name "$n")" '[serve, -addr, ":8080"]'; done
  pod_on_node "vol-n$N" "$(node_name "$N")" '[serve, -addr, ":8080", -data, /data]' nodes-data
  cat <<EOF
---
apiVersion: v1
kind: Service
metadata:
  name: nodes-web
  labels: {$LABEL_YAML}
spec:
  selector: {app: nodes-web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: nodes-data
  labels: {$LABEL_YAML}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
EOF
} | k apply -f - >/dev/null
pods=()
for ((n = 1; n <= N; n++)); do pods+=("pod/web-n$n"); done
k wait --for=condition=Ready "${pods[@]}" "pod/vol-n$N" --timeout=120s >/dev/null
for ((n = 1; n <= N; n++)); do
  got=$(k get pod "web-n$n" -o jsonpath='{.spec.nodeName}')
  expect_eq "node of web-n$n" "$got" "$(node_name "$n")"
  ip=$(k get pod "web-n$n" -o jsonpath='{.status.podIP}')
  [[ $ip == "$(node_pod_cidr "$n" | cut -d. -f1-3)".* ]] || { echo "web-n$n has IP $ip, outside $(node_pod_cidr "$n")" >&2; false; }
done
ok

step "pod to pod across every pair of nodes"
for ((from = 1; from <= N; from++)); do
  for ((to = 1; to <= N; to++)); do
    ip=$(k get pod "web-n$to" -o jsonpath='{.status.podIP}')
    got=$(k exec "web-n$from" -- webtool get "http://$ip:8080/hostname")
    expect_eq "web-n$from -> web-n$to ($ip)" "$got" "web-n$to"
  done
done
ok

svc_reaches_every_node() { # svc_reaches_every_node FROM_POD URL
  local seen=" " i got
  for ((i = 0; i < 60; i++)); do
    got=$(k exec "$1" -- webtool get "$2/hostname")
    [[ $seen == *" $got "* ]] || seen+="$got "
    local all=1 n
    for ((n = 1; n <= N; n++)); do [[ $seen == *" web-n$n "* ]] || all=0; done
    ((all)) && { log "$1 reached through $2: $seen"; return 0; }
  done
  echo "$1 reached only [$seen] through $2 in 60 requests" >&2
  false
}

step "ClusterIP Service reaches the pods of every node, from node 1 and from node $N"
svc_ip=$(k get service nodes-web -o jsonpath='{.spec.clusterIP}')
svc_reaches_every_node web-n1 "http://$svc_ip:8080"
svc_reaches_every_node "web-n$N" "http://$svc_ip:8080"
ok

step "DNS from a pod on node $N: a Service name of the cluster domain, no outside names"
got=$(k exec "web-n$N" -- webtool lookup "nodes-web.default.svc.$CLUSTER_DOMAIN")
expect_eq "nodes-web.default.svc.$CLUSTER_DOMAIN" "$got" "$svc_ip"
svc_reaches_every_node "web-n$N" "http://nodes-web:8080"
if k exec "web-n$N" -- webtool lookup example.com >/dev/null 2>&1; then
  echo "example.com resolved from a pod on node $N: CoreDNS must not forward" >&2
  false
fi
ok

step "the claim is bound to a local PV of its pod's node (node $N), and the pod writes to it"
k wait --for=jsonpath='{.status.phase}'=Bound pvc/nodes-data --timeout=60s >/dev/null
pv=$(k get pvc nodes-data -o jsonpath='{.spec.volumeName}')
got=$(k get pv "$pv" -o jsonpath='{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}')
expect_eq "node affinity of $pv" "$got" "$(node_name "$N")"
got=$(k get pv "$pv" -o jsonpath='{.spec.local.path}')
[[ $got == "$(node_dir "$N")"/volumes/* ]] || { echo "$pv's path $got is not in node $N's volumes" >&2; false; }
k exec "vol-n$N" -- webtool write /data/marker "on-node-$N"
got=$(cat "$got/marker")
expect_eq "file in $pv's directory" "$got" "on-node-$N"
ok

step "clean up (the released local PV is recycled: Available again)"
k delete pod,service -l "$LABEL" --grace-period=1 --wait=true --timeout=60s >/dev/null
k delete pvc nodes-data --wait=true --timeout=60s >/dev/null
k wait --for=jsonpath='{.status.phase}'=Available "pv/$pv" --timeout=60s >/dev/null
[[ ! -e $(k get pv "$pv" -o jsonpath='{.spec.local.path}')/marker ]] || { echo "$pv was not emptied" >&2; false; }
ok

echo "smoke-nodes: $PASSED passed, 0 failed"
