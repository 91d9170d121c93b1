#!/usr/bin/env bash
# Crash and restart the local cluster's node agents, as a node crash would: SIGKILL kubelet,
# containerd and the given extra PIDs (e.g. every process of some pods) in ONE kill(1), then
# start containerd and kubelet again with exactly the command line and environment they ran
# with (read from /proc before the kill), and wait until the node is Ready.
#
# Other pods' containers keep running (their shims survive containerd), as they would on a node
# whose agents restart; the pods whose processes were killed are restarted by kubelet.
#
# usage: tests/cluster/restart-node.sh [PID...]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) == 0 ]] || die "restarting the node agents needs root"
[[ ${KVSTORE_CLUSTER:-local} != existing ]] || die "KVSTORE_CLUSTER=existing: not our node to restart"
for p in "$@"; do [[ $p =~ ^[0-9]+$ ]] || die "not a pid: $p"; done
cluster_lock

# Each daemon's pid, argv and environment (NUL-separated in /proc), to start it the same way.
ctr_pid=$(daemon_pid containerd) || die "containerd is not running: is the cluster up?"
kl_pid=$(daemon_pid kubelet) || die "kubelet is not running: is the cluster up?"
mapfile -d '' ctr_argv <"/proc/$ctr_pid/cmdline"
mapfile -d '' ctr_env <"/proc/$ctr_pid/environ"
mapfile -d '' kl_argv <"/proc/$kl_pid/cmdline"
mapfile -d '' kl_env <"/proc/$kl_pid/environ"
((${#ctr_argv[@]} && ${#kl_argv[@]})) || die "could not read the command lines of containerd/kubelet"

log "node crash: kill -KILL kubelet ($kl_pid), containerd ($ctr_pid) and $# other process(es)"
kill -KILL "$kl_pid" "$ctr_pid" "$@"
for p in "$kl_pid" "$ctr_pid"; do
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && die "pid $p survived SIGKILL"
done

log "restarting containerd and kubelet"
start_daemon containerd env -i "${ctr_env[@]}" "${ctr_argv[@]}"
wait_for 60 "containerd socket" containerd ctr --address "$CONTAINERD_SOCK" version
start_daemon kubelet env -i "${kl_env[@]}" "${kl_argv[@]}"
# The node's Ready condition is stale right after a restart: wait for kubelet itself first.
wait_for 120 "kubelet healthz" kubelet curl -fsS "http://$NODE_IP:10248/healthz"
wait_for 120 "node $NODE_NAME Ready" kubelet kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
log "node agents back: containerd pid $(daemon_pid containerd), kubelet pid $(daemon_pid kubelet)"
