#!/usr/bin/env bash
# Smoke test of the cluster: StatefulSet with PVCs (ordered readiness), DNS through a
# headless Service, ClusterIP Service, kubectl logs/exec/port-forward, pod restart keeps its
# volume data, and non-cluster names do not resolve. Never skips: a missing cluster fails.
# Bounded waits only (kubectl wait/rollout --timeout); any failure prints diagnostics and
# the tail of every component log.
#
# KVSTORE_CLUSTER=existing: use the cluster KUBECONFIG points at, image from
# $KVSTORE_IMAGE_REGISTRY/kvstore/webtool:dev (pulled IfNotPresent).
set -Eeuo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSED=0
FAILED=0
CURRENT="preflight"

if [[ ${KVSTORE_CLUSTER:-local} == existing ]]; then
  : "${KUBECONFIG:?KVSTORE_CLUSTER=existing needs KUBECONFIG}"
  : "${KVSTORE_IMAGE_REGISTRY:?KVSTORE_CLUSTER=existing needs KVSTORE_IMAGE_REGISTRY (where kvstore/webtool:dev was pushed)}"
  KUBECTL=(kubectl)
  IMAGE="$KVSTORE_IMAGE_REGISTRY/kvstore/webtool:dev"
  PULL_POLICY=IfNotPresent
else
  KUBECTL=("$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN")
  IMAGE="$WEBTOOL_IMAGE"
  PULL_POLICY=Never
fi
k() { "${KUBECTL[@]}" "$@"; }

on_fail() {
  local rc=$?
  trap - ERR
  echo >&2
  echo "SMOKE TEST FAILED in step: $CURRENT (line $1, exit $rc)" >&2
  echo "----- diagnostics -----" >&2
  if ! command -v "${KUBECTL[0]}" >/dev/null; then
    echo "kubectl not found (${KUBECTL[0]}): is the cluster up?" >&2
    echo "smoke: $PASSED passed, $((FAILED + 1)) failed" >&2
    exit 1
  fi
  k get nodes -o wide >&2 2>&1 || true
  k get pods,pvc,pv,svc,endpointslices -o wide >&2 2>&1 || true
  k describe pods -l app.kubernetes.io/part-of=kvstore-smoke >&2 2>&1 | tail -n 80 || true
  k get events --sort-by=.lastTimestamp >&2 2>&1 | tail -n 30 || true
  [[ ${KVSTORE_CLUSTER:-local} == existing ]] || dump_logs 30
  echo "smoke: $PASSED passed, $((FAILED + 1)) failed" >&2
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

step "cluster reachable"
if ! k get --raw /readyz >/dev/null 2>&1; then
  echo "no cluster: the API server is not reachable (local cluster: run 'make cluster-up'; KVSTORE_CLUSTER=${KVSTORE_CLUSTER:-local})" >&2
  false
fi
ok

step "clean up objects of an earlier run"
k delete statefulset web --ignore-not-found --wait=true --timeout=60s >/dev/null
k delete pod dns-client --ignore-not-found --grace-period=1 --wait=true --timeout=60s >/dev/null
k delete pvc -l app=web --ignore-not-found --wait=true --timeout=60s >/dev/null
k delete pvc data-web-0 data-web-1 --ignore-not-found --wait=true --timeout=60s >/dev/null
k delete service web web-svc --ignore-not-found >/dev/null
ok

step "StatefulSet web with volumeClaimTemplates becomes Ready, PVCs Bound"
sed -e "s|@IMAGE@|$IMAGE|g" -e "s|@PULL_POLICY@|$PULL_POLICY|g" "$CLUSTER_DIR/smoke/manifests.yaml" | k apply -f - >/dev/null
k rollout status statefulset/web --timeout=180s
k wait --for=jsonpath='{.status.phase}'=Bound pvc/data-web-0 pvc/data-web-1 --timeout=60s
k wait --for=condition=Ready pod/web-0 pod/web-1 pod/dns-client --timeout=120s
ok

step "web-0 became Ready before web-1 was created (OrderedReady)"
ready0=$(k get pod web-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].lastTransitionTime}')
created1=$(k get pod web-1 -o jsonpath='{.metadata.creationTimestamp}')
log "web-0 Ready at $ready0, web-1 created at $created1"
if [[ -z $ready0 || -z $created1 || $created1 < $ready0 ]]; then
  echo "web-1 (created $created1) was created before web-0 was Ready ($ready0)" >&2
  false
fi
ok

step "DNS: web-0.web and its FQDN resolve to web-0's pod IP from another pod"
ip0=$(k get pod web-0 -o jsonpath='{.status.podIP}')
got=$(k exec dns-client -- webtool lookup web-0.web)
expect_eq "web-0.web" "$got" "$ip0"
got=$(k exec dns-client -- webtool lookup "web-0.web.default.svc.$CLUSTER_DOMAIN")
expect_eq "web-0.web.default.svc.$CLUSTER_DOMAIN" "$got" "$ip0"
got=$(k exec dns-client -- webtool get http://web-0.web:8080/hostname)
expect_eq "http://web-0.web:8080/hostname" "$got" "web-0"
ok

step "ClusterIP Service web-svc answers from a pod (kube-proxy)"
got=$(k exec dns-client -- webtool get "http://web-svc.default.svc.$CLUSTER_DOMAIN:8080/healthz")
expect_eq "web-svc /healthz" "$got" "ok"
ok

step "in-cluster API access (service account, kubernetes.default ClusterIP) as the operator will use it"
got=$(k exec dns-client -- webtool apiget /version)
grep -q '"gitVersion"' <<<"$got" || { echo "unexpected /version answer: $got" >&2; false; }
ok

step "names outside the cluster do not resolve (no forwarding)"
if k exec dns-client -- webtool lookup example.com >/dev/null 2>&1; then
  echo "example.com resolved from inside a pod: CoreDNS must not forward" >&2
  false
fi
ok

step "kubectl logs"
logs=$(k logs web-0)
grep -q "webtool serving on :8080" <<<"$logs" || { echo "$logs" >&2; false; }
ok

step "kubectl port-forward"
port=$((20000 + RANDOM % 10000))
k port-forward --address 127.0.0.1 pod/web-0 "$port:8080" >"${TMPDIR:-/tmp}/kvs-smoke-pf.log" 2>&1 &
pf=$!
deadline=$((SECONDS + 30))
until got=$(curl -fsS "http://127.0.0.1:$port/hostname" 2>/dev/null); do
  if ((SECONDS > deadline)) || ! kill -0 "$pf" 2>/dev/null; then
    cat "${TMPDIR:-/tmp}/kvs-smoke-pf.log" >&2
    kill "$pf" 2>/dev/null || true
    false
  fi
  sleep 0.5
done
kill "$pf" 2>/dev/null || true
wait "$pf" 2>/dev/null || true
expect_eq "port-forwarded /hostname" "$got" "web-0"
ok

step "kubectl exec writes to the volume; deleting web-1 brings it back with the same PVC and data"
marker="written-before-delete-$RANDOM$RANDOM"
k exec web-1 -- webtool write /data/marker "$marker"
vol_before=$(k get pvc data-web-1 -o jsonpath='{.spec.volumeName}')
uid_before=$(k get pod web-1 -o jsonpath='{.metadata.uid}')
k delete pod web-1 --wait=true --timeout=60s >/dev/null
k wait --for=create pod/web-1 --timeout=60s >/dev/null
k wait --for=condition=Ready pod/web-1 --timeout=120s >/dev/null
uid_after=$(k get pod web-1 -o jsonpath='{.metadata.uid}')
[[ $uid_after != "$uid_before" ]] || { echo "web-1 was not recreated" >&2; false; }
vol_after=$(k get pvc data-web-1 -o jsonpath='{.spec.volumeName}')
expect_eq "web-1's volume after restart" "$vol_after" "$vol_before"
got=$(k exec web-1 -- webtool cat /data/marker)
expect_eq "/data/marker on the recreated web-1" "$got" "$marker"
# The recreated pod's DNS record follows its EndpointSlice, which can lag its Ready by a few
# seconds (and CoreDNS caches the miss): ask for up to 30 s, as any client would retry.
for _ in $(seq 30); do
  got=$(k exec dns-client -- webtool get http://web-1.web:8080/files/marker 2>&1) && break
  sleep 1
done
expect_eq "web-1 serving its file over the headless Service" "$got" "$marker"
ok

step "clean up"
k delete statefulset web --wait=true --timeout=60s >/dev/null
k delete pod dns-client --grace-period=1 --wait=true --timeout=60s >/dev/null
k delete pvc data-web-0 data-web-1 --wait=true --timeout=60s >/dev/null
k delete service web web-svc >/dev/null
ok

echo "smoke: $PASSED passed, $FAILED failed"
