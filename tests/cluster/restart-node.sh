#!/usr/bin/env bash
# Crash and restart the local cluster's node agents, as a node crash would: SIGKILL kubelet,
# containerd and the given extra PIDs (e.g. every process of some pods) in ONE kill(1), then
# start containerd and kubelet again with exactly the command line and environment they ran
# with (read from /proc before the kill), and wait until the node is Ready.
#
# Other pods' containers keep running (their shims survive containerd), as they would on a node
# whose agents restart; the pods whose processes were killed are restarted by kubelet.
#
# With several nodes (KVSTORE_NODES > 1), --node N crashes and restarts node N's agents instead
# (containerd-nN and kubelet-nN, started again inside the node's netns with nsenter --net).
#
# usage: tests/cluster/restart-node.sh [--node N] [PID...]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

node=1
if [[ ${1:-} == --node ]]; then
  node=${2:?usage: restart-node.sh [--node N] [PID...]}
  shift 2
  [[ $node =~ ^[1-9]$ ]] || die "not a node number: $node"
fi
suffix="" wrap=() name=$NODE_NAME ip=$NODE_IP sock=$CONTAINERD_SOCK
if ((node > 1)); then
  suffix="-n$node" wrap=(nsenter --net="/run/netns/$(node_netns "$node")" --)
  name=$(node_name "$node") ip=$(node_ip "$node") sock=$(node_sock "$node")
fi

[[ $(id -u) == 0 ]] || die "restarting the node agents needs root"
[[ ${KVSTORE_CLUSTER:-local} != existing ]] || die "KVSTORE_CLUSTER=existing: not our node to restart"
for p in "$@"; do [[ $p =~ ^[0-9]+$ ]] || die "not a pid: $p"; done
cluster_lock

# Each daemon's pid, argv and environment (NUL-separated in /proc), to start it the same way.
ctr_pid=$(daemon_pid "containerd$suffix") || die "containerd$suffix is not running: is the cluster up (with node $node)?"
kl_pid=$(daemon_pid "kubelet$suffix") || die "kubelet$suffix is not running: is the cluster up (with node $node)?"
mapfile -d '' ctr_argv <"/proc/$ctr_pid/cmdline"
mapfile -d '' ctr_env <"/proc/$ctr_pid/environ"
mapfile -d '' kl_argv <"/proc/$kl_pid/cmdline"
mapfile -d '' kl_env <"/proc/$kl_pid/environ"
((${#ctr_argv[@]} && ${#kl_argv[@]})) || die "could not read the command lines of containerd/kubelet"

log "node crash of $name: kill -KILL kubelet ($kl_pid), containerd ($ctr_pid) and $# other process(es)"
kill -KILL "$kl_pid" "$ctr_pid" "$@"
for p in "$kl_pid" "$ctr_pid"; do
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && die "pid $p survived SIGKILL"
done

log "restarting containerd and kubelet"
start_daemon "containerd$suffix" "${wrap[@]}" env -i "${ctr_env[@]}" "${ctr_argv[@]}"
wait_for 60 "containerd socket" "containerd$suffix" ctr --address "$sock" version
# `ctr version` answers before containerd's CRI service is initialized, and a kubelet started
# then exits ("server is not initialized yet"): start it again, a few times at most.
# The node's Ready condition is stale right after a restart: wait for kubelet itself first.
for attempt in 1 2 3; do
  start_daemon "kubelet$suffix" "${wrap[@]}" env -i "${kl_env[@]}" "${kl_argv[@]}"
  if wait_for 120 "kubelet healthz" "kubelet$suffix" curl -fsS "http://$ip:10248/healthz"; then break; fi
  ((attempt < 3)) || die "kubelet did not come up after $attempt starts"
  log "kubelet exited before its healthz answered (attempt $attempt); starting it again"
  sleep 2
done
wait_for 120 "node $name Ready" "kubelet$suffix" kubectl_admin wait --for=condition=Ready "node/$name" --timeout=5s
log "node agents back: containerd pid $(daemon_pid "containerd$suffix"), kubelet pid $(daemon_pid "kubelet$suffix")"
