#!/usr/bin/env bash
# Stop the local cluster and remove everything up.sh created: processes (by pid file),
# pod sandboxes and containers (through CRI, then runc/shim leftovers by id), mounts,
# interfaces, iptables chains, blackhole routes, cgroups, host sysctls and $KVSTORE_STATE;
# for a cluster of several nodes (nodes.sh) also every node's daemons, containers, network
# namespace, veth and cgroup root, whatever KVSTORE_NODES says now.
# Safe to run any number of times; a no-op when nothing is there.
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) == 0 ]] || die "needs root"
if [[ ${KVSTORE_CLUSTER:-local} == existing ]]; then
  log "KVSTORE_CLUSTER=existing: nothing local to stop"
  exit 0
fi
cluster_lock

IPT=/usr/sbin/iptables-legacy
IP6T=/usr/sbin/ip6tables-legacy

stop_daemon() { # stop_daemon NAME [GRACE_SECONDS]
  local name=$1 grace=${2:-15} pidf="$RUN_DIR/$1.pid" pid i
  [[ -f $pidf ]] || return 0
  if pid=$(daemon_pid "$name"); then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 5; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not exit after ${grace}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -f "$pidf"
}

EXTRA_NODES=$(extra_nodes_in_state) # nodes 2..N of this cluster (none for one node)

# 1. Components that create or manage pods go first, so nothing is recreated meanwhile.
for d in kubelet kube-controller-manager kube-scheduler pv-recycler; do stop_daemon "$d"; done
for n in $EXTRA_NODES; do stop_daemon "kubelet-n$n"; done

# 2. Pods: through CRI while containerd is still up, so each sandbox gets its CNI DEL.
cri_cleanup() { # cri_cleanup CONTAINERD_DAEMON SOCK [NODE]
  if daemon_running "$1" && [[ -S $2 && -x $BIN_DIR/kube ]]; then
    log "removing all pod sandboxes and containers through CRI${3:+ on node $3}"
    timeout 150 "$BIN_DIR/kube" cri-cleanup "unix://$2" || log "cri-cleanup reported errors (continuing with leftovers)"
  fi
}
cri_cleanup containerd "$CONTAINERD_SOCK"
for n in $EXTRA_NODES; do cri_cleanup "containerd-n$n" "$(node_sock "$n")" "$n"; done

# 3. The rest of the daemons.
for n in $EXTRA_NODES; do stop_daemon "kube-proxy-n$n"; stop_daemon "containerd-n$n"; done
for d in kube-proxy coredns containerd kube-apiserver etcd; do stop_daemon "$d"; done

# 4. Leftover container processes and shims, by the ids/pids containerd and runc recorded.
# containerd 1.6 writes no shim pid file: each task dir records the shim's socket address,
# and the process listening on that socket (and serving our containerd) is the shim.
kill_leftover_containers() { # kill_leftover_containers CONTAINERD_STATE CONTAINERD_SOCK RUNC_ROOT
  local ctr_state=$1 ctr_sock=$2 runc_root=$3 shim_pids=() f sock pid ns c id
  if [[ -d $ctr_state ]]; then
    while IFS= read -r f; do
      sock=$(cat "$f" 2>/dev/null); sock=${sock#unix://}
      [[ -n $sock ]] || continue
      for pid in $(ss -xlpn 2>/dev/null | awk -v s="$sock" '$5 == s' | grep -o 'pid=[0-9]*' | cut -d= -f2); do
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-address $ctr_sock" && shim_pids+=("$pid")
      done
    done < <(find "$ctr_state" -path '*io.containerd.runtime.v2.task*' -name address 2>/dev/null)
  fi
  if [[ -d $runc_root ]]; then
    for ns in "$runc_root"/*/; do
      [[ -d $ns ]] || continue
      for c in "$ns"*/; do
        [[ -f $c/state.json ]] || continue
        id=$(basename "$c")
        log "killing leftover container $id"
        runc --root "${ns%/}" kill "$id" KILL 2>/dev/null
        runc --root "${ns%/}" delete --force "$id" 2>/dev/null
      done
    done
  fi
  for pid in $(printf '%s\n' "${shim_pids[@]}" | sort -u); do
    kill -0 "$pid" 2>/dev/null && { log "killing leftover containerd shim pid $pid"; kill -KILL "$pid"; }
  done
}
kill_leftover_containers "$CONTAINERD_STATE" "$CONTAINERD_SOCK" "$STATE/containerd/runc"
for n in $EXTRA_NODES; do
  kill_leftover_containers "$(node_dir "$n")/containerd/state" "$(node_sock "$n")" "$(node_dir "$n")/containerd/runc"
done

# 5. Mounts: everything below the state dir (overlay snapshots, sandbox shm, pod volumes,
# service-account tokens), deepest first; then network namespaces containerd left behind.
unmount_below() {
  local root=$1 m
  [[ -d $root ]] || return 0
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done < <(awk -v r="$root" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
}
unmount_below "$STATE"
unmount_below /var/lib/kubelet
for ns in /var/run/netns/cni-*; do
  [[ -e $ns ]] || continue
  log "removing leftover network namespace $ns"
  umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null
  rm -f "$ns"
done
# The nodes' network namespaces (their veths, bridges and routes go with them), found by
# name so that none is left even without the state dir.
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^kvs-n[0-9]+$/ {print $1}'); do
  log "removing node network namespace $ns"
  ip netns del "$ns" 2>/dev/null || log "could not remove network namespace $ns"
done
for v in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^kvsn[0-9]+h$'); do
  ip link del "$v" 2>/dev/null
done
if [[ -f $STATE/created-run-netns-mount ]] && [[ -z $(ls -A /run/netns 2>/dev/null) ]]; then
  umount /run/netns 2>/dev/null || log "could not unmount /run/netns"
fi

# 6. Network: veths on our bridge, the bridge, the dummy node interface, blackhole routes.
if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
  for v in $(ip -o link show master "$CNI_BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$v" 2>/dev/null
  done
  ip link del "$CNI_BRIDGE"
fi
ip link show "$NODE_IF" >/dev/null 2>&1 && ip link del "$NODE_IF"
for r in "$POD_CIDR" "$SERVICE_CIDR" "$NODE_RANGE"; do
  ip route del blackhole "$r" 2>/dev/null
done

# 7. iptables (legacy backend, where kubelet, kube-proxy and the CNI plugins wrote):
# remove every rule that jumps to our chains, then flush and delete the chains.
clean_iptables() {
  local ipt=$1 save=$2 t line chain
  for t in filter nat mangle raw; do
    "$save" -t "$t" >/dev/null 2>&1 || continue
    # (the nft tools warn on stderr that legacy tables exist: expected here)
    while IFS= read -r line; do
      eval "\"$ipt\" -t $t -D ${line#-A }" 2>/dev/null
    done < <("$save" -t "$t" 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE-|CNI-|KVS-)')
    for chain in $("$save" -t "$t" 2>/dev/null | awk '/^:(KUBE-|CNI-|KVS-)/ {print substr($1, 2)}'); do
      "$ipt" -t "$t" -F "$chain" 2>/dev/null
    done
    for chain in $("$save" -t "$t" 2>/dev/null | awk '/^:(KUBE-|CNI-|KVS-)/ {print substr($1, 2)}'); do
      "$ipt" -t "$t" -X "$chain" 2>/dev/null || log "could not delete $t/$chain"
    done
  done
}
[[ -x $IPT ]] && clean_iptables "$IPT" /usr/sbin/iptables-legacy-save
[[ -x $IP6T ]] && clean_iptables "$IP6T" /usr/sbin/ip6tables-legacy-save
# Also the nf_tables backend, in case a component ever ran with the system's default iptables.
[[ -x /usr/sbin/iptables-nft ]] && clean_iptables /usr/sbin/iptables-nft /usr/sbin/iptables-nft-save
[[ -x /usr/sbin/ip6tables-nft ]] && clean_iptables /usr/sbin/ip6tables-nft /usr/sbin/ip6tables-nft-save
if command -v conntrack >/dev/null; then
  for r in "$POD_CIDR" "$SERVICE_CIDR" "$NODE_RANGE"; do
    conntrack -D -s "$r" >/dev/null 2>&1
    conntrack -D -d "$r" >/dev/null 2>&1
  done
fi

# 8. cgroups kubelet and runc created (cgroupfs driver: /kubepods in every hierarchy), and
# the other nodes' cgroup roots /kvs-n<n> (up.sh made them, their kubelets filled them).
for h in /sys/fs/cgroup/*/; do
  for c in "$h"kubepods "$h"kvs-n[0-9]*; do
    [[ -d $c ]] || continue
    find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || log "could not remove all of $c"
  done
done

# 9. Host sysctls (kubelet and the bridge plugin change these) back to what they were.
if [[ -f $STATE/sysctl.orig ]]; then
  while IFS='=' read -r k v; do sysctl -qw "$k=$v" 2>/dev/null || log "could not restore $k=$v"; done <"$STATE/sysctl.orig"
fi

# 10. Files: pod log symlinks, fixed-path dirs we created, PV data, then the whole state dir.
if [[ -d /var/log/containers ]]; then
  find /var/log/containers -maxdepth 1 -type l -lname "$STATE/*" -delete 2>/dev/null
fi
[[ -f $STATE/created-var-lib-kubelet ]] && rm -rf /var/lib/kubelet
[[ -f $STATE/created-run-containerd ]] && rm -rf /run/containerd
[[ -f $STATE/created-var-run-netns ]] && rmdir /var/run/netns 2>/dev/null
[[ -f $STATE/created-var-log-containers ]] && rmdir /var/log/containers 2>/dev/null
rm -rf "$HOSTPATH_PV_DIR"
# Keep the last cluster's component logs for post-mortems (CI failures, flaky tests).
if [[ -d $LOG_DIR ]]; then
  rm -rf "$CACHE/cluster-logs/last"
  mkdir -p "$CACHE/cluster-logs"
  cp -a "$LOG_DIR" "$CACHE/cluster-logs/last" && log "component logs of this cluster kept in $CACHE/cluster-logs/last"
fi
if [[ -d $STATE ]]; then
  if awk -v r="$STATE" 'index($5, r) == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
    log "mounts remain below $STATE; not deleting it"
    exit 1
  fi
  rm -rf "$STATE"
fi
log "local cluster removed"
