# shellcheck shell=bash
# shellcheck disable=SC2034 # settings used by the scripts that source this file
# Shared settings and helpers for the local Kubernetes test cluster (one node by default,
# KVSTORE_NODES=N for N nodes). Sourced by up.sh, nodes.sh, down.sh, env.sh, build.sh,
# smoke-test.sh, smoke-nodes.sh and tests/images/build.sh.
#
# Layout (all outside the clone):
#   $KVSTORE_CACHE            build outputs keyed by version (survive cluster-down)
#   $KVSTORE_CACHE/go/{mod,build}  GOMODCACHE / GOCACHE
#   $KVSTORE_STATE            everything one running cluster owns (removed by cluster-down)

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLUSTER_DIR/../.." && pwd)"

# KVSTORE_CACHE (and CARGO_TARGET_DIR) and log(), as every project script has them.
# shellcheck source=tests/lib/base.sh
source "$REPO_ROOT/tests/lib/base.sh"
export KVSTORE_STATE="${KVSTORE_STATE:-/var/lib/kvstore-cluster}"
CACHE="$KVSTORE_CACHE"
STATE="$KVSTORE_STATE"

# Versions (the cache is keyed by these plus a hash of our own build sources).
K8S_VERSION=v1.35.4
K8S_STAGING_VERSION=v0.35.4
ETCD_VERSION=v3.6.16
COREDNS_VERSION=v1.14.7
PAUSE_IMAGE=registry.k8s.io/pause:kvstore-local
WEBTOOL_IMAGE=docker.io/kvstore/webtool:dev

# Network plan: nothing here overlaps the machine network (192.0.2.0/24, 10.0.0.0/8).
NODE_NAME=kvstore-node
NODE_IF=kvs0                       # port-less bridge ("dummy") holding the node IP
NODE_IP=172.30.0.1                 # apiserver advertise address, kubelet node IP, CoreDNS
NODE_RANGE=172.30.0.0/16           # blackholed around the node IP
POD_CIDR=172.28.0.0/16             # cluster pod range (blackholed)
NODE_POD_CIDR=172.28.0.0/24        # this node's pods (bridge route wins over the blackhole)
SERVICE_CIDR=172.29.0.0/16         # service range (blackholed)
KUBERNETES_SVC_IP=172.29.0.1
DNS_SVC_IP=172.29.0.10             # kube-dns Service whose EndpointSlice points at CoreDNS on NODE_IP
CLUSTER_DOMAIN=cluster.local
CNI_BRIDGE=kvsbr0
APISERVER_PORT=6443
ETCD_CLIENT_PORT=2379              # loopback only (pods can reach the node IP)
ETCD_PEER_PORT=2380                # loopback only

# Paths inside $STATE.
LOG_DIR="$STATE/logs"
RUN_DIR="$STATE/run"               # pid files
PKI_DIR="$STATE/pki"
CONF_DIR="$STATE/conf"
KUBECONFIG_ADMIN="$STATE/kubeconfig"
CONTAINERD_ROOT="$STATE/containerd/root"
CONTAINERD_STATE="$STATE/containerd/state"
CONTAINERD_SOCK="$STATE/containerd/containerd.sock"
KUBELET_ROOT="$STATE/kubelet"
HOSTPATH_PV_DIR="/tmp/hostpath_pv"  # controller-manager's host-path provisioner (fixed upstream)
BIN_DIR="$STATE/bin"               # symlinks to the cached binaries in use

# Several nodes (KVSTORE_NODES=N, 1..9; default 1 = only the node above). Node 1 is always
# $NODE_NAME in the host network namespace; node n >= 2 runs its own containerd, kubelet and
# kube-proxy in network namespace kvs-n<n> (see nodes.sh), with its files in $NODES_DIR/n<n>.
KVSTORE_NODES="${KVSTORE_NODES:-1}"
NODES_DIR="$STATE/nodes"
node_name() { if (($1 == 1)); then echo "$NODE_NAME"; else echo "$NODE_NAME-$1"; fi; }
node_ip() { echo "172.30.0.$1"; }                     # inside NODE_RANGE; node 1 = NODE_IP
node_pod_cidr() { echo "172.28.$(($1 - 1)).0/24"; }   # inside POD_CIDR; node 1 = NODE_POD_CIDR
node_zone() { local z=abcdefghi; echo "${z:$(($1 - 1)):1}"; } # topology.kubernetes.io/zone
node_netns() { echo "kvs-n$1"; }
node_veth() { echo "kvsn$1h"; }                       # host end of the node's veth (eth0 inside)
node_dir() { echo "$NODES_DIR/n$1"; }
node_sock() { if (($1 == 1)); then echo "$CONTAINERD_SOCK"; else echo "$NODES_DIR/n$1/containerd/containerd.sock"; fi; }
# The node numbers >= 2 a cluster in $STATE has (whatever KVSTORE_NODES says now).
extra_nodes_in_state() {
  local d
  for d in "$NODES_DIR"/n*/; do
    d=${d%/}; d=${d##*/n}
    [[ $d =~ ^[0-9]+$ ]] && ((d >= 2)) && echo "$d"
  done
  return 0
}
# The containerd sockets of the running nodes (node 1 first), for image imports.
running_containerd_socks() {
  local n
  daemon_running containerd && [[ -S $CONTAINERD_SOCK ]] && echo "$CONTAINERD_SOCK"
  for n in $(extra_nodes_in_state); do
    daemon_running "containerd-n$n" && [[ -S $(node_sock "$n") ]] && node_sock "$n"
  done
  return 0
}

export GOMODCACHE="${GOMODCACHE:-$CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$CACHE/go/build}"
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:--mod=readonly}" # never rewrite our go.mod/go.sum during a build
export PATH="$BIN_DIR:/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

# The system python (pyenv shims may not be set up for root in CI).
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=python3

die() { log "ERROR: $*"; exit 1; }

# Install Debian packages the cluster needs, only those missing.
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "apt-get install ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# sha256 of files (order matters), short.
hash_files() { cat "$@" | sha256sum | cut -c1-12; }

# Start a daemon in the background with its log and pid file in $STATE.
# usage: start_daemon NAME CMD [ARGS...]
start_daemon() {
  local name=$1; shift
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  if daemon_running "$name"; then log "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return 0; fi
  log "starting $name"
  # setsid: own session, so a terminal's signals don't reach it; stdin from /dev/null.
  # 9>&-: daemons must not inherit the cluster lock (see cluster_lock).
  setsid "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
}

# The pid in NAME's pid file, if that process is alive and still is NAME (a stale pid file
# whose pid was reused by an unrelated process must never lead to killing that process).
# NAME-n<k> (a daemon of node k >= 2) must also name that node's directory.
daemon_pid() {
  local pidf="$RUN_DIR/$1.pid" pid cmd base=$1 node_path=""
  if [[ $1 =~ ^(.+)-n([0-9]+)$ ]]; then base=${BASH_REMATCH[1]}; node_path="/nodes/n${BASH_REMATCH[2]}/"; fi
  [[ -f $pidf ]] || return 1
  pid=$(cat "$pidf")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  grep -q -- "$base" <<<"$cmd" || return 1
  [[ -z $node_path ]] || grep -q -- "$node_path" <<<"$cmd" || return 1
  echo "$pid"
}
daemon_running() { daemon_pid "$1" >/dev/null; }

# Serialize up.sh/down.sh (and the builds they run) between concurrent callers.
cluster_lock() {
  [[ -n ${KVSTORE_CLUSTER_LOCKED:-} ]] && return 0
  mkdir -p "$CACHE"
  exec 9>"$CACHE/cluster.lock"
  if ! flock -n 9; then
    log "waiting for another cluster-up/cluster-down to finish ($CACHE/cluster.lock)"
    flock -w 1800 9 || die "could not get $CACHE/cluster.lock"
  fi
  export KVSTORE_CLUSTER_LOCKED=1
}

# Wait until CMD succeeds, up to SECONDS; on timeout print the daemon's log tail and fail.
# usage: wait_for SECONDS WHAT LOGNAME CMD [ARGS...]
wait_for() {
  local secs=$1 what=$2 logname=$3; shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${secs}s waiting for $what"
      [[ -n $logname && -f $LOG_DIR/$logname.log ]] && tail -n 40 "$LOG_DIR/$logname.log" >&2
      return 1
    fi
    if [[ -n $logname ]] && [[ -f $RUN_DIR/$logname.pid ]] && ! daemon_running "$logname"; then
      log "$logname exited while waiting for $what"
      tail -n 60 "$LOG_DIR/$logname.log" >&2
      return 1
    fi
    sleep 1
  done
}

kubectl_admin() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# Print the tail of every component log (used on any failure).
dump_logs() {
  local n=${1:-40} f
  [[ -d $LOG_DIR ]] || { log "no logs: $LOG_DIR does not exist"; return 0; }
  for f in "$LOG_DIR"/*.log; do
    [[ -f $f ]] || continue
    printf '\n===== tail -n %s %s =====\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2
  done
}
