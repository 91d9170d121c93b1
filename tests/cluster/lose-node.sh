#!/usr/bin/env bash
# A node lost for good, as the operator sees one: SIGKILL node N's kubelet, containerd and the
# given extra PIDs (its pods' processes) in one kill(1), without starting them again, and
# delete its Node object. Its local volumes stay on disk and its PersistentVolumes stay bound:
# only the node is gone. `--restore` brings it back (the Node object as cluster-up made it, then
# containerd and kubelet with the command lines they ran with), so later tests have it again.
#
# usage: tests/cluster/lose-node.sh --node N [PID...]
#        tests/cluster/lose-node.sh --restore --node N
# Needs a cluster of several nodes (KVSTORE_NODES > 1) and N > 1: node 1 runs the only kube-proxy
# the control plane reaches its pods through.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

restore=0
if [[ ${1:-} == --restore ]]; then restore=1; shift; fi
[[ ${1:-} == --node ]] || die "usage: lose-node.sh [--restore] --node N [PID...]"
node=${2:?usage: lose-node.sh [--restore] --node N [PID...]}
shift 2
[[ $node =~ ^[2-9]$ ]] || die "not a node number of 2..9: $node"
[[ $(id -u) == 0 ]] || die "needs root"
[[ ${KVSTORE_CLUSTER:-local} != existing ]] || die "KVSTORE_CLUSTER=existing: not our node"
for p in "$@"; do [[ $p =~ ^[0-9]+$ ]] || die "not a pid: $p"; done
cluster_lock

name=$(node_name "$node")
saved="$(node_dir "$node")/lost"
wrap=(nsenter --net="/run/netns/$(node_netns "$node")" --)

if ((restore)); then
  [[ -d $saved ]] || die "node $node was not lost by this script (no $saved)"
  cidr=$(node_pod_cidr "$node")
  printf -- 'apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels: {kubernetes.io/hostname: %s, topology.kubernetes.io/zone: %s}\nspec:\n  podCIDR: %s\n  podCIDRs: [%s]\n' \
    "$name" "$name" "$(node_zone "$node")" "$cidr" "$cidr" | kubectl_admin apply -f - >>"$LOG_DIR/bootstrap-apply.log"
  for d in containerd kubelet; do
    mapfile -d '' argv <"$saved/$d.argv"
    mapfile -d '' envs <"$saved/$d.env"
    start_daemon "$d-n$node" "${wrap[@]}" env -i "${envs[@]}" "${argv[@]}"
    [[ $d == containerd ]] && wait_for 60 "containerd socket" "containerd-n$node" ctr --address "$(node_sock "$node")" version
  done
  wait_for 120 "node $name Ready" "kubelet-n$node" kubectl_admin wait --for=condition=Ready "node/$name" --timeout=5s
  rm -rf "$saved"
  log "node $name restored"
  exit 0
fi

ctr_pid=$(daemon_pid "containerd-n$node") || die "containerd-n$node is not running"
kl_pid=$(daemon_pid "kubelet-n$node") || die "kubelet-n$node is not running"
mkdir -p "$saved"
cp "/proc/$ctr_pid/cmdline" "$saved/containerd.argv"
cp "/proc/$ctr_pid/environ" "$saved/containerd.env"
cp "/proc/$kl_pid/cmdline" "$saved/kubelet.argv"
cp "/proc/$kl_pid/environ" "$saved/kubelet.env"
log "losing node $name: kill -KILL kubelet ($kl_pid), containerd ($ctr_pid) and $# other process(es)"
kill -KILL "$kl_pid" "$ctr_pid" "$@"
for p in "$kl_pid" "$ctr_pid"; do
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && die "pid $p survived SIGKILL"
done
kubectl_admin delete node "$name" --wait=false >>"$LOG_DIR/bootstrap-apply.log"
log "node $name deleted (restore: tests/cluster/lose-node.sh --restore --node $node)"
