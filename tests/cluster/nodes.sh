# shellcheck shell=bash
# Nodes 2..KVSTORE_NODES of the local cluster (sourced by up.sh, which calls these functions in
# order; nothing here runs with the default of one node). Node n >= 2 is what a kind node
# container would hold, without a container engine:
#   network   netns kvs-n<n> (entered with nsenter --net, which keeps the host mount namespace:
#             `ip netns exec` would make kubelet's and containerd's mounts invisible to the host),
#             veth kvsn<n>h <-> eth0 with node IP 172.30.0.<n>; pod CIDR 172.28.<n-1>.0/24 on
#             bridge kvsbr<n> inside the netns; host routes <pod CIDR> via <node IP>
#   processes containerd-n<n>, kubelet-n<n>, kube-proxy-n<n> (pid files in $RUN_DIR)
#   files     $NODES_DIR/n<n>/{containerd/{root,state,runc,opt},kubelet,pki,pod-logs,cni/{conf,networks},volumes}
#   cgroups   /kvs-n<n> in every cgroup v1 hierarchy (kubelet kills processes in pod cgroups it
#             does not know, so each kubelet needs its own cgroupRoot; node 1 keeps /kubepods)
# Node 1 stays as it is; with several nodes it also gets a route to the other nodes' pods and
# static local PVs. Teardown: down.sh.

# run CMD inside node n's network namespace, in the host's mount namespace.
in_node() { local n=$1; shift; nsenter --net="/run/netns/$(node_netns "$n")" -- "$@"; }

# Network namespaces, veths, routes, and forwarding rules that keep traffic on the machine.
nodes_network() {
  local n ns veth ip
  # `ip netns add` makes /run/netns a (shared bind) mount point if it is none: down.sh undoes it.
  mkdir -p /run/netns
  mountpoint -q /run/netns || touch "$STATE/created-run-netns-mount"
  for ((n = 2; n <= KVSTORE_NODES; n++)); do
    ns=$(node_netns "$n") veth=$(node_veth "$n") ip=$(node_ip "$n")
    ip netns list | grep -qx "$ns\( .*\)\?" || ip netns add "$ns"
    ip link show "$veth" >/dev/null 2>&1 || ip link add "$veth" type veth peer name eth0 netns "$ns"
    sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1" 2>/dev/null || true
    # The host end holds the node-1 IP as well, so that masquerading towards this node picks
    # 172.30.0.1 (not the machine's address) and the node's ARP for its gateway is answered.
    ip addr replace "$NODE_IP/32" dev "$veth"
    ip link set "$veth" up
    ip route replace "$ip/32" dev "$veth" src "$NODE_IP"
    ip route replace "$(node_pod_cidr "$n")" via "$ip" dev "$veth" src "$NODE_IP"
    in_node "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv4.ip_forward=1
    in_node "$n" ip link set lo up
    in_node "$n" ip addr replace "$ip/32" dev eth0
    in_node "$n" ip link set eth0 up
    in_node "$n" ip route replace "$NODE_IP/32" dev eth0 src "$ip"
    # No default route: only the cluster's own ranges, through the host.
    for r in "$POD_CIDR" "$SERVICE_CIDR" "$NODE_RANGE"; do
      in_node "$n" ip route replace "$r" via "$NODE_IP" dev eth0 src "$ip"
    done
  done
  # Forwarding on the host: node veths <-> node 1's pod bridge and between node veths only;
  # anything else in or out of a node veth is dropped (before the pod-range rules of up.sh).
  local rules=(
    "-i kvsn+ -o $CNI_BRIDGE -j RETURN"
    "-i $CNI_BRIDGE -o kvsn+ -j RETURN"
    "-i kvsn+ -o kvsn+ -j RETURN"
    "-i kvsn+ -j DROP"
    "-o kvsn+ -j DROP"
  ) i
  for i in "${!rules[@]}"; do
    # shellcheck disable=SC2086 # each rule is a list of words
    "$IPT" -I KVS-FORWARD $((i + 1)) ${rules[$i]} -m comment --comment "kvstore-cluster: nodes stay local"
  done
}

# /kvs-n<n> in every cgroup v1 hierarchy (cpuset needs its cpus and mems, or tasks get ENOSPC).
nodes_cgroups() {
  local n h
  for ((n = 2; n <= KVSTORE_NODES; n++)); do
    while read -r h; do
      mkdir -p "$h/kvs-n$n"
      if [[ -f $h/cpuset.cpus ]]; then
        cat "$h/cpuset.cpus" >"$h/kvs-n$n/cpuset.cpus"
        cat "$h/cpuset.mems" >"$h/kvs-n$n/cpuset.mems"
      fi
    done < <(awk '$3 == "cgroup" {print $2}' /proc/mounts)
  done
}

# Certificates and kubeconfigs (run by up.sh inside $PKI_DIR, with its sign and kubeconfig).
nodes_pki() {
  local n name nd
  for ((n = 2; n <= KVSTORE_NODES; n++)); do
    name=$(node_name "$n") nd=$(node_dir "$n")
    # shellcheck disable=SC2154 # client_ext: defined by up.sh
    sign "kubelet-client-n$n" "/O=system:nodes/CN=system:node:$name" "$client_ext"
    sign "kubelet-serving-n$n" "/O=system:nodes/CN=system:node:$name" "$(server_ext "IP:$(node_ip "$n"),DNS:$name")"
    chmod 0600 ./*.key
    kubeconfig "$CONF_DIR/kubelet-client-n$n.kubeconfig" "kubelet-client-n$n"
    mkdir -p "$nd/pki"
    cp ca.crt "$nd/pki/ca.crt"
    cp "kubelet-serving-n$n.crt" "$nd/pki/kubelet-serving.crt"
    cp "kubelet-serving-n$n.key" "$nd/pki/kubelet-serving.key"
  done
}

# Node objects made before any kubelet registers: each gets its pod CIDR (the controller-manager's
# allocator keeps existing allocations, so node n always has node_pod_cidr n) and its zone.
# Then the static local PVs, NODE_PVS per node, in per-node directories owned by uid 65532.
NODE_PVS=${KVSTORE_NODE_PVS:-12}
NODE_PV_SIZE=2Gi
nodes_objects() {
  local n name cidr i dir
  for ((n = 1; n <= KVSTORE_NODES; n++)); do
    name=$(node_name "$n") cidr=$(node_pod_cidr "$n")
    printf -- '---\napiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels: {kubernetes.io/hostname: %s, topology.kubernetes.io/zone: %s}\nspec:\n  podCIDR: %s\n  podCIDRs: [%s]\n' \
      "$name" "$name" "$(node_zone "$n")" "$cidr" "$cidr"
  done | kubectl_admin apply -f - >>"$LOG_DIR/bootstrap-apply.log"
  for ((n = 1; n <= KVSTORE_NODES; n++)); do
    name=$(node_name "$n")
    for ((i = 1; i <= NODE_PVS; i++)); do
      dir="$(node_dir "$n")/volumes/pv$i"
      mkdir -p "$dir"
      chown 65532:65532 "$dir"
      chmod 0755 "$dir"
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-$name-pv$i
  labels: {kvstore.dev/local-pv: "true", kubernetes.io/hostname: $name}
spec:
  capacity: {storage: $NODE_PV_SIZE}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  volumeMode: Filesystem
  local: {path: $dir}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$name]}
EOF
    done
  done | kubectl_admin apply -f - >>"$LOG_DIR/bootstrap-apply.log"
  chmod 0711 "$NODES_DIR" "$NODES_DIR"/n*/ "$NODES_DIR"/n*/volumes # uid 65532 reaches its volumes
  echo "$KVSTORE_NODES" >"$NODES_DIR/count"
}

# containerd per node: own config, root, state, sockets, runc root, CNI config and network name.
nodes_containerd() {
  local n nd
  for ((n = 2; n <= KVSTORE_NODES; n++)); do
    nd=$(node_dir "$n")
    mkdir -p "$nd/cni/conf" "$nd/cni/networks" "$nd/containerd" "$nd/pod-logs" "$nd/kubelet"
    sed -e "s|@CNI_NETWORK@|kvstore-n$n|g" -e "s|@STATE@|$nd|g" -e "s|@CNI_BRIDGE@|kvsbr$n|g" \
      -e "s|@NODE_POD_CIDR@|$(node_pod_cidr "$n")|g" -e "s|@POD_GW@|172.28.$((n - 1)).1|g" \
      -e "s|@SERVICE_CIDR@|$SERVICE_CIDR|g" -e "s|@NODE_RANGE@|$NODE_RANGE|g" \
      -e "s|@EXTRA_ROUTES@|, {\"dst\": \"$POD_CIDR\"}|g" \
      "$CLUSTER_DIR/conf/cni.conflist" >"$nd/cni/conf/10-kvstore.conflist"
    sed -e "s|@CONTAINERD_ROOT@|$nd/containerd/root|g" -e "s|@CONTAINERD_STATE@|$nd/containerd/state|g" \
      -e "s|@CONTAINERD_SOCK@|$(node_sock "$n")|g" -e "s|@PAUSE_IMAGE@|$PAUSE_IMAGE|g" \
      -e "s|@CNI_CONF_DIR@|$nd/cni/conf|g" -e "s|@STATE@|$nd|g" \
      "$CLUSTER_DIR/conf/containerd.toml" >"$nd/containerd.toml"
    start_daemon "containerd-n$n" nsenter --net="/run/netns/$(node_netns "$n")" -- \
      env PATH="$BIN_DIR:/usr/sbin:/usr/bin:/sbin:/bin" containerd --config "$nd/containerd.toml"
  done
  for ((n = 2; n <= KVSTORE_NODES; n++)); do
    wait_for 60 "containerd socket of node $n" "containerd-n$n" ctr --address "$(node_sock "$n")" version
  done
}

# kubelet per node: own root, cert dir, pod logs dir, cgroup root, node IP and name.
nodes_kubelet() {
  local n nd
  for ((n = 2; n <= KVSTORE_NODES; n++)); do
    nd=$(node_dir "$n")
    sed -e "s|@PKI_DIR@|$nd/pki|g" -e "s|@NODE_IP@|$(node_ip "$n")|g" -e "s|@DNS_SVC_IP@|$DNS_SVC_IP|g" \
      -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" -e "s|@CONF_DIR@|$CONF_DIR|g" -e "s|@CONTAINERD_SOCK@|$(node_sock "$n")|g" \
      -e "s|@STATE@|$nd|g" -e "s|@NODE_POD_CIDR@|$(node_pod_cidr "$n")|g" \
      "$CLUSTER_DIR/conf/kubelet.yaml" >"$nd/kubelet.yaml"
    printf '# Node %s: its own cgroup parent (pre-created by up.sh in every hierarchy).\ncgroupRoot: /kvs-n%s\n' "$n" "$n" >>"$nd/kubelet.yaml"
    start_daemon "kubelet-n$n" nsenter --net="/run/netns/$(node_netns "$n")" -- \
      "$BIN_DIR/kubelet" --config "$nd/kubelet.yaml" \
      --kubeconfig "$CONF_DIR/kubelet-client-n$n.kubeconfig" --root-dir "$nd/kubelet" --cert-dir "$nd/pki" \
      --hostname-override "$(node_name "$n")" --node-ip "$(node_ip "$n")" \
      --node-labels "topology.kubernetes.io/zone=$(node_zone "$n")" --v=1
  done
}

# kube-proxy per node, in the node's netns (two in one netns would fight over the KUBE-* chains).
nodes_kube_proxy() {
  local n nd
  for ((n = 2; n <= KVSTORE_NODES; n++)); do
    nd=$(node_dir "$n")
    sed -e "s|@CONF_DIR@|$CONF_DIR|g" -e "s|@POD_CIDR@|$POD_CIDR|g" -e "s|@NODE_NAME@|$(node_name "$n")|g" \
      -e "s|@NODE_IP@|$(node_ip "$n")|g" "$CLUSTER_DIR/conf/kube-proxy.yaml" >"$nd/kube-proxy.yaml"
    start_daemon "kube-proxy-n$n" nsenter --net="/run/netns/$(node_netns "$n")" -- \
      "$BIN_DIR/kube-proxy" --config "$nd/kube-proxy.yaml" --v=1
  done
}

nodes_wait_ready() {
  local n
  for ((n = 2; n <= KVSTORE_NODES; n++)); do
    wait_for 180 "node $(node_name "$n") Ready" "kubelet-n$n" \
      kubectl_admin wait --for=condition=Ready "node/$(node_name "$n")" --timeout=5s
  done
}
