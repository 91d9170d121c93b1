#!/usr/bin/env bash
# `make demo`: the chapter's experiment, automated. Brings up the local cluster (or uses the current
# kube context with KVSTORE_CLUSTER=existing), builds and imports the images, installs the operator
# with its Helm chart, applies examples/kvstore.yaml, starts the topology-following client and a
# verifying load generator, scales the store 3→5→2 while streaming the client's screen, and ends
# with a summary: hits, lost keys, and how long each scale took. Then a replicated store
# (examples/kvstore-replicated.yaml, 3 copies per shard) loses a shard leader to kill -9 while a
# second screen follows it: a new leader is elected and the screen stays at 100% hits.
# Ctrl-C stops it cleanly.
# The cluster and the store are left running; `make cluster-down` removes everything.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" demo || exit 1
# shellcheck source=tests/lib/deploy.sh
source tests/lib/deploy.sh
NS=default
STORE=server
read -r -a SCALES <<<"${DEMO_SCALES:-5 2}"
STEPS=7
say() { printf '\n\033[1m[%s/%s] %s\033[0m\n' "$1" "$STEPS" "$2"; }
info() { printf '  %s\n' "$*"; }

streamer=""
cleanup_pods() {
  if [[ -n $streamer ]]; then kill "$streamer" 2>/dev/null || true; fi
  kubectl -n "$NS" delete pod demo-load demo-screen-replicated --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
on_interrupt() {
  printf '\n\nInterrupted: stopping the demo clients. The cluster and the store keep running;\n'
  printf '%s\n' "\`make cluster-down\` removes everything."
  cleanup_pods
  exit 130
}
trap on_interrupt INT TERM

say 1 "local Kubernetes v1.35 (first run builds it from Go modules: expect a long build with progress below)"
if [[ ${KVSTORE_CLUSTER:-local} == existing ]]; then
  info "KVSTORE_CLUSTER=existing: using the current context ($(kubectl config current-context))"
else
  tests/cluster/up.sh
fi
cluster_env "run the demo on"

say 2 "images (cargo build --release, then daemonless OCI images)"
deploy_images

say 3 "operator (Helm chart charts/kvstore-operator)"
helm_install_operator >/dev/null
restart_operator

# status_of: generation observed, phase, serving shards, rebalance phase (empty when none).
status_of() {
  kubectl -n "$NS" get kvs "$STORE" -o jsonpath='{.metadata.generation} {.status.observedGeneration} {.status.phase} {.status.replicas} {.status.rebalance.phase}'
}
wait_available() { # wait_available N: until the store serves N shards, Available, no move in flight
  local want=$1 gen obs phase replicas rb
  for _ in $(seq 1 900); do
    read -r gen obs phase replicas rb < <(status_of; echo) || true
    if [[ $gen == "$obs" && $phase == Available && $replicas == "$want" && -z ${rb:-} ]]; then return 0; fi
    sleep 1
  done
  echo "the store did not become Available with $want shards; kubectl describe kvs $STORE:" >&2
  kubectl -n "$NS" describe kvs "$STORE" >&2
  return 1
}

say 4 "the store: kubectl apply -f examples/kvstore.yaml (3 shards, as in the book)"
kubectl apply -f examples/kvstore.yaml
wait_available 3
kubectl -n "$NS" get kvs,pods,pvc

say 5 "clients: the topology-following screen, and a load generator that verifies every write"
kubectl apply -f examples/client-follow.yaml
kubectl -n "$NS" delete pod demo-load --ignore-not-found >/dev/null
kubectl -n "$NS" run demo-load --image="$IMAGE_REGISTRY/kvclient:$IMAGE_TAG" --image-pull-policy=IfNotPresent \
  --restart=Never --overrides='{"spec":{"serviceAccountName":"kvclient","terminationGracePeriodSeconds":120}}' -- \
  load --kvstore "$STORE" --keys 10000 --concurrency 8 --duration 2h --write-ratio 0.3 --prefill --json >/dev/null
kubectl -n "$NS" wait pod/client-follow pod/demo-load --for=condition=Ready --timeout=180s >/dev/null
kubectl -n "$NS" logs -f client-follow &
streamer=$!
load_log=$(mktemp)
kubectl -n "$NS" logs -f demo-load >"$load_log" 2>&1 &
sleep 8

path="3"; for n in "${SCALES[@]}"; do path+=" → $n"; done
say 6 "kubectl scale kvstore/$STORE: $path"
declare -a took=()
for n in "${SCALES[@]}"; do
  printf '\n>>> kubectl scale kvstore/%s --replicas=%s\n' "$STORE" "$n"
  start=$SECONDS
  kubectl -n "$NS" scale kvstore/"$STORE" --replicas="$n" >/dev/null
  sleep 2
  wait_available "$n"
  took+=("$((SECONDS - start)) s")
  sleep 6
done

kubectl -n "$NS" delete pod demo-load --wait=false >/dev/null
for _ in $(seq 1 120); do grep -q '^{' "$load_log" && break; sleep 1; done
kill "$streamer" 2>/dev/null || true
streamer=""
last_round=$(kubectl -n "$NS" logs client-follow --tail=1 2>/dev/null || true)
report=$(grep '^{' "$load_log" | tail -n 1 || true)

printf '\n\033[1mSummary\033[0m\n'
printf '  follower, last round : %s\n' "$last_round"
if [[ -n $report ]]; then
  python3 - "$report" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
v = r["verify"]
print(f"  load generator       : {r['requests']} requests, {r['requests_per_s']:.0f}/s, p99 {r['p99_ms']:.1f} ms, {r['errors']} errors")
print(f"  lost keys            : {v['lost']} lost, {v['wrong']} wrong, {v['unreadable']} unreadable of {v['keys_checked']} checked")
PY
else
  printf '  load generator       : no report (see %s)\n' "$load_log"
fi
prev=3
for i in "${!SCALES[@]}"; do
  printf '  scale %s → %s         : %s\n' "$prev" "${SCALES[$i]}" "${took[$i]}"
  prev=${SCALES[$i]}
done
printf '\n%s\n' "The store keeps running: kubectl get kvs; kubectl logs -f client-follow. \`make cluster-down\` removes everything."

say 7 "replication: kubectl apply -f examples/kvstore-replicated.yaml, then kill -9 of a shard leader"
RSTORE=replicated
kubectl apply -f examples/kvstore-replicated.yaml
summary_of() { kubectl -n "$NS" get kvs "$RSTORE" -o jsonpath='{.status.replication.summary}' 2>/dev/null; }
for _ in $(seq 1 300); do [[ $(summary_of) == 3/3 ]] && break; sleep 1; done
[[ $(summary_of) == 3/3 ]] || { kubectl -n "$NS" describe kvs "$RSTORE" >&2; exit 1; }
kubectl -n "$NS" get kvs "$RSTORE" -o wide
kubectl -n "$NS" delete pod demo-screen-replicated --ignore-not-found >/dev/null
# The screen retries a refused or unanswered request for up to 5 s, moving to another copy.
kubectl -n "$NS" run demo-screen-replicated --image="$IMAGE_REGISTRY/kvclient:$IMAGE_TAG" \
  --image-pull-policy=IfNotPresent --restart=Never \
  --overrides='{"spec":{"serviceAccountName":"kvclient","terminationGracePeriodSeconds":1}}' -- \
  --kvstore "$RSTORE" --interval 1 --retry-within 5s >/dev/null
kubectl -n "$NS" wait pod/demo-screen-replicated --for=condition=Ready --timeout=180s >/dev/null
sleep 6
leader=$(kubectl -n "$NS" get kvs "$RSTORE" -o jsonpath='{.status.replication.shards[1].leader}')
screen_log=$(mktemp)
kubectl -n "$NS" logs -f demo-screen-replicated --since=1s 2>&1 | tee "$screen_log" &
streamer=$!
sleep 2
cid=$(kubectl -n "$NS" get pod "$leader" -o jsonpath='{.status.containerStatuses[?(@.name=="kvserver")].containerID}')
cid=${cid#*://}
pids=""
if [[ ${KVSTORE_CLUSTER:-local} != existing && -n $cid && $(id -u) == 0 ]]; then
  # The container's processes, by the cgroup that names it on this (the cluster's) node.
  pids=$(grep -l -- "$cid" /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3 | tr '\n' ' ' || true)
fi
if [[ -n $pids ]]; then
  printf '\n>>> kill -9 of kvserver (pid %s) in %s, the leader of shard 1\n' "$pids" "$leader"
  # shellcheck disable=SC2086 # one word per pid
  kill -KILL $pids
else
  printf '\n>>> kubectl delete pod %s (the leader of shard 1; kill -9 needs root on the cluster node)\n' "$leader"
  kubectl -n "$NS" delete pod "$leader" --wait=false >/dev/null
fi
sleep 20
kill "$streamer" 2>/dev/null || true
streamer=""
rounds=$(grep -c '| hits = ' "$screen_log" || true)
short=$(grep '| hits = ' "$screen_log" | grep -vc '(100%)' || true)
printf '\n\033[1mReplication\033[0m\n'
restarts=$(kubectl -n "$NS" get pod "$leader" -o jsonpath='{.status.containerStatuses[?(@.name=="kvserver")].restartCount}' 2>/dev/null || true)
now_leader=$(kubectl -n "$NS" get kvs "$RSTORE" -o jsonpath='{.status.replication.shards[1].leader}')
# Another copy leads while the killed one restarts; once it is back in sync the operator
# hands leadership back to copy 0 (the preferred leader), so "now" is often the same pod.
printf '  shard 1              : leader %s killed (its kvserver restarted %s times); leader now %s\n' "$leader" "${restarts:-?}" "${now_leader:-?}"
printf '  screen after the kill: %s rounds, %s below 100%% hits\n' "$rounds" "$short"
printf '  copies in sync       : %s\n' "$(summary_of)"
printf '\n%s\n' "Both stores keep running: kubectl get kvs -o wide; kubectl logs -f demo-screen-replicated."
