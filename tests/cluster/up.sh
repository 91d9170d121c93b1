#!/usr/bin/env bash
# Start the local Kubernetes (see README.md): one node, or KVSTORE_NODES=N nodes (nodes.sh).
# Idempotent: a healthy running cluster with that many nodes is left alone; a half-started or
# broken one (or one with another number of nodes) is torn down and started again.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=nodes.sh
source "$CLUSTER_DIR/nodes.sh"

START=$SECONDS
[[ $(id -u) == 0 ]] || die "the local cluster needs root (network, mounts, cgroups)"
if [[ ${KVSTORE_CLUSTER:-local} == existing ]]; then
  log "KVSTORE_CLUSTER=existing: not starting a local cluster; using KUBECONFIG=${KUBECONFIG:-<unset>}"
  exit 0
fi

[[ $KVSTORE_NODES =~ ^[1-9]$ ]] || die "KVSTORE_NODES must be 1..9, not '$KVSTORE_NODES'"

cluster_lock
on_up_fail() {
  local rc=$?
  trap - ERR
  log "cluster-up FAILED (exit $rc). Component logs: $LOG_DIR (tails below). Clean up with: make cluster-down"
  dump_logs 25
  exit "$rc"
}
trap on_up_fail ERR
set -E
ALL_DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns)
if ((KVSTORE_NODES > 1)); then
  ALL_DAEMONS+=(pv-recycler)
  for ((n = 2; n <= KVSTORE_NODES; n++)); do ALL_DAEMONS+=("containerd-n$n" "kubelet-n$n" "kube-proxy-n$n"); done
fi

cluster_healthy() {
  local d
  for d in "${ALL_DAEMONS[@]}"; do daemon_running "$d" || return 1; done
  [[ -x $BIN_DIR/kubectl && -f $KUBECONFIG_ADMIN ]] || return 1
  kubectl_admin get --raw /readyz >/dev/null 2>&1 || return 1
  [[ $(cat "$NODES_DIR/count" 2>/dev/null || echo 1) == "$KVSTORE_NODES" ]] || return 1
  local n
  for ((n = 1; n <= KVSTORE_NODES; n++)); do
    [[ $(kubectl_admin get node "$(node_name "$n")" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]] || return 1
  done
}

if cluster_healthy; then
  log "cluster already up and healthy (nothing to do)"
  "$CLUSTER_DIR/env.sh"
  exit 0
fi
if [[ -d $STATE ]]; then
  log "found state of a stopped or broken cluster in $STATE: tearing it down first"
  "$CLUSTER_DIR/down.sh"
fi

# ---------------------------------------------------------------- packages and builds
ensure_apt containerd runc containernetworking-plugins iptables conntrack socat openssl \
  curl iproute2 util-linux ca-certificates
"$CLUSTER_DIR/build.sh" all
mkdir -p "$STATE" "$LOG_DIR" "$RUN_DIR" "$PKI_DIR" "$CONF_DIR"
chmod 0711 "$STATE" # kube-controller-manager (uid 65532) must traverse to pki/cm
"$CLUSTER_DIR/build.sh" link
# Our processes (kubelet, kube-proxy, containerd's CNI plugins) use legacy iptables:
# the kernel has the legacy nat/filter tables; keep all rules in one backend.
for t in iptables ip6tables; do
  for s in "" -save -restore; do
    [[ -x /usr/sbin/$t-legacy$s ]] || die "/usr/sbin/$t-legacy$s missing (package iptables)"
    ln -sfn "/usr/sbin/$t-legacy$s" "$BIN_DIR/$t$s"
  done
done
IPT="$BIN_DIR/iptables"

# ---------------------------------------------------------------- host settings (restored by down.sh)
save_sysctls() {
  local f="$STATE/sysctl.orig" k
  [[ -f $f ]] && return 0
  for k in net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
    echo "$k=$(sysctl -n "$k")" >>"$f"
  done
}
save_sysctls
[[ -e /var/lib/kubelet ]] || touch "$STATE/created-var-lib-kubelet" # kubelet's device-plugin dir is fixed
[[ -e /run/containerd ]] || touch "$STATE/created-run-containerd"   # containerd shims' socket dir is fixed
[[ -e /var/run/netns ]] || touch "$STATE/created-var-run-netns"
[[ -e /var/log/containers ]] || touch "$STATE/created-var-log-containers" # kubelet's fixed symlink dir

# ---------------------------------------------------------------- network
log "network: $NODE_IF=$NODE_IP, pods $POD_CIDR, services $SERVICE_CIDR (all blackholed; pods have no default route)"
# The kernel has no dummy driver: a bridge without ports is our "dummy" holding the node IP.
ip link show "$NODE_IF" >/dev/null 2>&1 || ip link add "$NODE_IF" type bridge
sysctl -qw "net.ipv6.conf.$NODE_IF.disable_ipv6=1" 2>/dev/null || true
ip addr replace "$NODE_IP/32" dev "$NODE_IF"
ip link set "$NODE_IF" up
for r in "$POD_CIDR" "$SERVICE_CIDR" "$NODE_RANGE"; do ip route replace blackhole "$r"; done
sysctl -qw net.ipv4.ip_forward=1 # pod -> ClusterIP -> pod is routed back out of the bridge
# Forwarding is only ever allowed bridge -> bridge: pods can reach nothing outside the machine.
"$IPT" -N KVS-FORWARD 2>/dev/null || "$IPT" -F KVS-FORWARD
"$IPT" -A KVS-FORWARD -s "$POD_CIDR" ! -o "$CNI_BRIDGE" -j DROP -m comment --comment "kvstore-cluster: pods stay local"
"$IPT" -A KVS-FORWARD -d "$POD_CIDR" ! -i "$CNI_BRIDGE" -j DROP -m comment --comment "kvstore-cluster: pods stay local"
"$IPT" -C FORWARD -j KVS-FORWARD 2>/dev/null || "$IPT" -I FORWARD 1 -j KVS-FORWARD
if ((KVSTORE_NODES > 1)); then
  log "nodes 2..$KVSTORE_NODES: network namespaces, veths, routes, cgroups"
  nodes_network
  nodes_cgroups
fi

# ---------------------------------------------------------------- PKI
chmod 0711 "$PKI_DIR"
cd "$PKI_DIR"
sign() { # sign NAME SUBJECT EXTENSIONS
  local name=$1 subj=$2 ext=$3
  [[ -f $name.crt ]] && return 0
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$name.key" \
    -subj "$subj" -out "$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -days 3650 -sha256 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
server_ext() { printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$1"; }
if [[ ! -f ca.crt ]]; then
  log "generating PKI in $PKI_DIR"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
    -subj "/CN=kvstore-local-ca" -days 3650 -sha256 -out ca.crt \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
  openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
fi
sign apiserver "/CN=kube-apiserver" "$(server_ext "IP:$NODE_IP,IP:$KUBERNETES_SVC_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN")"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client_ext"
sign admin "/O=system:masters/CN=kubernetes-admin" "$client_ext"
sign controller-manager "/CN=system:kube-controller-manager" "$client_ext"
sign scheduler "/CN=system:kube-scheduler" "$client_ext"
sign kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" "$client_ext"
sign kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" "$(server_ext "IP:$NODE_IP,DNS:$NODE_NAME")"
sign kube-proxy "/CN=system:kube-proxy" "$client_ext"
sign coredns "/CN=system:kvstore-coredns" "$client_ext"
chmod 0600 ./*.key

kubeconfig() { # kubeconfig FILE CERTNAME
  local file=$1 name=$2
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kvstore-local
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI_DIR/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 <"$PKI_DIR/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI_DIR/$name.key")
contexts:
- name: kvstore-local
  context: {cluster: kvstore-local, user: $name}
current-context: kvstore-local
EOF
  chmod 0600 "$file"
}
kubeconfig "$KUBECONFIG_ADMIN" admin
for n in controller-manager scheduler kubelet-client kube-proxy coredns; do kubeconfig "$CONF_DIR/$n.kubeconfig" "$n"; done
# kube-controller-manager runs as uid 65532 (see below): give it its own copies.
mkdir -p "$PKI_DIR/cm"
cp ca.crt ca.key sa.key "$PKI_DIR/cm/"
cp "$CONF_DIR/controller-manager.kubeconfig" "$PKI_DIR/cm/kubeconfig"
chown -R 65532:65532 "$PKI_DIR/cm"
chmod 0700 "$PKI_DIR/cm"
((KVSTORE_NODES == 1)) || nodes_pki
cd "$REPO_ROOT"

# ---------------------------------------------------------------- etcd
start_daemon etcd "$BIN_DIR/etcd" --name kvstore --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "kvstore=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
  --quota-backend-bytes 2147483648 --log-level warn
wait_for 60 "etcd health" etcd curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

# ---------------------------------------------------------------- kube-apiserver
start_daemon kube-apiserver "$BIN_DIR/kube-apiserver" \
  --advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
  --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
  --authorization-mode Node,RBAC --allow-privileged=true \
  --client-ca-file "$PKI_DIR/ca.crt" \
  --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
  --kubelet-client-certificate "$PKI_DIR/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI_DIR/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI_DIR/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file "$PKI_DIR/sa.pub" --service-account-signing-key-file "$PKI_DIR/sa.key" \
  --enable-admission-plugins NodeRestriction --profiling=false --v=1
wait_for 120 "kube-apiserver /readyz" kube-apiserver kubectl_admin get --raw /readyz

# ---------------------------------------------------------------- bootstrap objects
log "applying bootstrap objects (RBAC for CoreDNS, default StorageClass, kube-dns Service)"
storage_manifest=storage-hostpath.yaml
((KVSTORE_NODES == 1)) || storage_manifest=storage-local.yaml
cat "$CLUSTER_DIR/manifests/bootstrap.yaml" "$CLUSTER_DIR/manifests/$storage_manifest" |
  sed -e "s/@DNS_SVC_IP@/$DNS_SVC_IP/g" -e "s/@NODE_IP@/$NODE_IP/g" |
  kubectl_admin apply --server-side --force-conflicts -f - >"$LOG_DIR/bootstrap-apply.log"
if ((KVSTORE_NODES > 1)); then
  log "$KVSTORE_NODES Node objects (pod CIDR, zone) and $NODE_PVS local PVs per node"
  nodes_objects
  start_daemon pv-recycler "$CLUSTER_DIR/pv-recycler.sh"
fi

# ---------------------------------------------------------------- controller-manager, scheduler
# The controller-manager runs as uid/gid 65532 so that the host-path provisioner's PV
# directories (/tmp/hostpath_pv/<uuid>, created mode 0750 by that process) are writable by
# pods running as the project's non-root uid 65532.
mkdir -p "$HOSTPATH_PV_DIR"
chown 65532:65532 "$HOSTPATH_PV_DIR"
chmod 0755 "$HOSTPATH_PV_DIR"
start_daemon kube-controller-manager setpriv --reuid 65532 --regid 65532 --clear-groups -- \
  "$BIN_DIR/kube-controller-manager" \
  --kubeconfig "$PKI_DIR/cm/kubeconfig" \
  --authentication-kubeconfig "$PKI_DIR/cm/kubeconfig" --authorization-kubeconfig "$PKI_DIR/cm/kubeconfig" \
  --bind-address "$NODE_IP" --secure-port 10257 --leader-elect=false \
  --cert-dir "$PKI_DIR/cm" \
  --service-account-private-key-file "$PKI_DIR/cm/sa.key" --root-ca-file "$PKI_DIR/cm/ca.crt" \
  --cluster-signing-cert-file "$PKI_DIR/cm/ca.crt" --cluster-signing-key-file "$PKI_DIR/cm/ca.key" \
  --use-service-account-credentials=true \
  --allocate-node-cidrs=true --cluster-cidr "$POD_CIDR" --node-cidr-mask-size 24 \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --enable-hostpath-provisioner=true --controllers '*,bootstrapsigner,tokencleaner' \
  --profiling=false --v=1
start_daemon kube-scheduler "$BIN_DIR/kube-scheduler" \
  --kubeconfig "$CONF_DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig "$CONF_DIR/scheduler.kubeconfig" --authorization-kubeconfig "$CONF_DIR/scheduler.kubeconfig" \
  --bind-address "$NODE_IP" --secure-port 10259 --leader-elect=false --profiling=false --v=1

# ---------------------------------------------------------------- containerd
mkdir -p "$CONF_DIR/cni" "$STATE/cni/networks" "$STATE/containerd" "$STATE/pod-logs"
extra_routes="" # several nodes: pods also reach the other nodes' pods (through the host)
((KVSTORE_NODES == 1)) || extra_routes=", {\"dst\": \"$POD_CIDR\"}"
sed -e "s|@CNI_NETWORK@|kvstore|g" -e "s|@EXTRA_ROUTES@|$extra_routes|g" -e "s|@STATE@|$STATE|g" -e "s|@CNI_BRIDGE@|$CNI_BRIDGE|g" -e "s|@NODE_POD_CIDR@|$NODE_POD_CIDR|g" \
  -e "s|@POD_GW@|${NODE_POD_CIDR%.*/*}.1|g" -e "s|@SERVICE_CIDR@|$SERVICE_CIDR|g" -e "s|@NODE_RANGE@|$NODE_RANGE|g" \
  "$CLUSTER_DIR/conf/cni.conflist" >"$CONF_DIR/cni/10-kvstore.conflist"
sed -e "s|@CONTAINERD_ROOT@|$CONTAINERD_ROOT|g" -e "s|@CONTAINERD_STATE@|$CONTAINERD_STATE|g" \
  -e "s|@CONTAINERD_SOCK@|$CONTAINERD_SOCK|g" -e "s|@PAUSE_IMAGE@|$PAUSE_IMAGE|g" \
  -e "s|@CNI_CONF_DIR@|$CONF_DIR/cni|g" -e "s|@STATE@|$STATE|g" \
  "$CLUSTER_DIR/conf/containerd.toml" >"$CONF_DIR/containerd.toml"
start_daemon containerd env PATH="$BIN_DIR:/usr/sbin:/usr/bin:/sbin:/bin" containerd --config "$CONF_DIR/containerd.toml"
wait_for 60 "containerd socket" containerd ctr --address "$CONTAINERD_SOCK" version
((KVSTORE_NODES == 1)) || nodes_containerd
# Images live in each node's containerd root: every node gets every image.
import_local_images() { # import_local_images SOCK [NODE]
  local sock=$1 on=${2:+ into node $2} what tar
  log "importing the locally built pause and webtool images$on"
  while IFS='=' read -r what tar; do
    case $what in pause|webtool) ctr --address "$sock" -n k8s.io images import "$tar" >>"$LOG_DIR/image-import.log" 2>&1 ;; esac
  done < <("$CLUSTER_DIR/build.sh" paths)
  # Project images built earlier by `make images` (tests/images/build.sh) come back too: the
  # containerd root is part of the state that cluster-down removes.
  for tar in "$CACHE"/images/out/*.tar; do
    [[ -f $tar ]] || continue
    log "importing $(basename "$tar")$on"
    ctr --address "$sock" -n k8s.io images import "$tar" >>"$LOG_DIR/image-import.log" 2>&1 ||
      log "WARNING: could not import $tar (see $LOG_DIR/image-import.log)"
  done
}
import_local_images "$CONTAINERD_SOCK"
for ((n = 2; n <= KVSTORE_NODES; n++)); do import_local_images "$(node_sock "$n")" "$n"; done

# ---------------------------------------------------------------- kubelet
printf 'nameserver %s\noptions ndots:5\n' "$NODE_IP" >"$CONF_DIR/resolv.conf"
sed -e "s|@PKI_DIR@|$PKI_DIR|g" -e "s|@NODE_IP@|$NODE_IP|g" -e "s|@DNS_SVC_IP@|$DNS_SVC_IP|g" \
  -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" -e "s|@CONF_DIR@|$CONF_DIR|g" -e "s|@CONTAINERD_SOCK@|$CONTAINERD_SOCK|g" \
  -e "s|@STATE@|$STATE|g" -e "s|@NODE_POD_CIDR@|$NODE_POD_CIDR|g" \
  "$CLUSTER_DIR/conf/kubelet.yaml" >"$CONF_DIR/kubelet.yaml"
start_daemon kubelet "$BIN_DIR/kubelet" --config "$CONF_DIR/kubelet.yaml" \
  --kubeconfig "$CONF_DIR/kubelet-client.kubeconfig" --root-dir "$KUBELET_ROOT" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1
((KVSTORE_NODES == 1)) || nodes_kubelet

# ---------------------------------------------------------------- kube-proxy
sed -e "s|@CONF_DIR@|$CONF_DIR|g" -e "s|@POD_CIDR@|$POD_CIDR|g" -e "s|@NODE_NAME@|$NODE_NAME|g" \
  -e "s|@NODE_IP@|$NODE_IP|g" "$CLUSTER_DIR/conf/kube-proxy.yaml" >"$CONF_DIR/kube-proxy.yaml"
start_daemon kube-proxy "$BIN_DIR/kube-proxy" --config "$CONF_DIR/kube-proxy.yaml" --v=1
((KVSTORE_NODES == 1)) || nodes_kube_proxy

# ---------------------------------------------------------------- CoreDNS (host process on the node IP)
sed -e "s|@NODE_IP@|$NODE_IP|g" -e "s|@CONF_DIR@|$CONF_DIR|g" -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" \
  "$CLUSTER_DIR/conf/Corefile" >"$CONF_DIR/Corefile"
start_daemon coredns "$BIN_DIR/coredns" -conf "$CONF_DIR/Corefile"

# ---------------------------------------------------------------- wait for a usable cluster
wait_for 180 "node $NODE_NAME Ready" kubelet kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
((KVSTORE_NODES == 1)) || nodes_wait_ready
wait_for 60 "CoreDNS ready (kubernetes plugin synced)" coredns curl -fsS "http://$NODE_IP:8181/ready"
wait_for 60 "default ServiceAccount" kube-controller-manager kubectl_admin get serviceaccount default -n default
for d in "${ALL_DAEMONS[@]}"; do daemon_running "$d" || { dump_logs 40; die "$d is not running"; }; done
nodes_note=""
((KVSTORE_NODES == 1)) || nodes_note=" ($KVSTORE_NODES nodes)"
log "cluster up$nodes_note in $((SECONDS - START))s: Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, containerd $(containerd --version | awk '{print $3}'), CoreDNS $COREDNS_VERSION"
log "logs: $LOG_DIR   state: $STATE   containerd socket: $CONTAINERD_SOCK"
"$CLUSTER_DIR/env.sh"
