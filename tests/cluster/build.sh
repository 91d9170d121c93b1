#!/usr/bin/env bash
# Build (or reuse from $KVSTORE_CACHE) every binary and image the local cluster needs:
#   kube      one multi-call binary: kube-apiserver, kube-controller-manager, kube-scheduler,
#             kubelet, kube-proxy, kubectl (k8s.io/kubernetes as a Go dependency)
#   etcd      go.etcd.io/etcd/server/v3
#   coredns   github.com/coredns/coredns
#   pause     our own static pause program, as an OCI image archive
#   webtool   our own static smoke-test program, as an OCI image archive
# Each output lives in a directory keyed by version + hash of our build sources and is
# skipped when present. Prints nothing on stdout; timings go to $CACHE/build-times.log.
#
# usage: build.sh [all|k8s|etcd|coredns|pause|webtool]...
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GO=/usr/local/go/bin/go
[[ -x $GO ]] || GO=$(command -v go) || die "Go (>= 1.26) is needed to build the cluster: not found at /usr/local/go/bin/go or on PATH"
mkdir -p "$CACHE/bin" "$CACHE/images"

# prune CURRENT: remove other cached versions next to CURRENT (same name prefix before the
# version/hash), so the cache holds one build of each component.
prune() {
  local cur=$1 base prefix f
  base=$(basename "$cur"); prefix=${base%%-*}
  for f in "$(dirname "$cur")/$prefix"-*; do
    [[ $f == "$cur" || ! -e $f ]] && continue
    log "pruning old build $f"
    rm -rf "$f"
  done
}

timed() { # timed LABEL CMD... : run, record wall time
  local label=$1 start=$SECONDS; shift
  "$@"
  local secs=$((SECONDS - start))
  ((secs < 3)) && return 0 # cached
  log "$label built in ${secs}s"
  echo "$(date -u +%FT%TZ) $label ${secs}s" >>"$CACHE/build-times.log"
}

k8s_dir()     { echo "$CACHE/bin/k8s-$K8S_VERSION-$(hash_files "$CLUSTER_DIR"/go/k8s/{go.mod,go.sum,main.go})"; }
etcd_dir()    { echo "$CACHE/bin/etcd-$ETCD_VERSION-$(hash_files "$CLUSTER_DIR"/go/etcd/{go.mod,go.sum})"; }
coredns_dir() { echo "$CACHE/bin/coredns-$COREDNS_VERSION-$(hash_files "$CLUSTER_DIR"/go/coredns/{go.mod,go.sum})"; }
pause_tar()   { echo "$CACHE/images/pause-$(hash_files "$CLUSTER_DIR"/go/pause/{go.mod,main.go} "$REPO_ROOT/tests/images/oci.py").tar"; }
webtool_tar() { echo "$CACHE/images/webtool-$(hash_files "$CLUSTER_DIR"/smoke/webtool/{go.mod,main.go} "$REPO_ROOT/tests/images/oci.py").tar"; }

build_k8s() {
  local out; out=$(k8s_dir)
  [[ -x $out/kube ]] && return 0
  log "building Kubernetes $K8S_VERSION components (one multi-call binary; cold build takes a long time on 2 cores)"
  local pkg=k8s.io/component-base/version cpkg=k8s.io/client-go/pkg/version
  local major=${K8S_VERSION#v}; major=${major%%.*}
  local minor=${K8S_VERSION#v"$major".}; minor=${minor%%.*}
  local date=2026-04-15T18:01:22Z # release time of k8s.io/kubernetes v1.35.4 on the module proxy
  local ld="-s -w" p
  for p in $pkg $cpkg; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ld+=" -X $p.gitCommit=module-$K8S_VERSION -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  (cd "$CLUSTER_DIR/go/k8s" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ld" -o "$out.tmp/kube" .)
  for p in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    ln -sf kube "$out.tmp/$p"
  done
  rm -rf "$out"; mv "$out.tmp" "$out"
  prune "$out"
}

build_etcd() {
  local out; out=$(etcd_dir)
  [[ -x $out/etcd ]] && return 0
  log "building etcd $ETCD_VERSION"
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  (cd "$CLUSTER_DIR/go/etcd" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$out"; mv "$out.tmp" "$out"
  prune "$out"
}

build_coredns() {
  local out; out=$(coredns_dir)
  [[ -x $out/coredns ]] && return 0
  log "building CoreDNS $COREDNS_VERSION"
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  (cd "$CLUSTER_DIR/go/coredns" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$out.tmp/coredns" github.com/coredns/coredns)
  rm -rf "$out"; mv "$out.tmp" "$out"
  prune "$out"
}

# build_static_image SRC_DIR BIN_NAME IMAGE_REF TAR ENTRYPOINT USER
build_static_image() {
  local src=$1 bin=$2 ref=$3 tar=$4 entry=$5 user=$6
  [[ -f $tar ]] && return 0
  local work; work=$(mktemp -d)
  mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp"
  (cd "$src" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$work/rootfs/bin/$bin" .)
  "$PYTHON" "$REPO_ROOT/tests/images/oci.py" --rootfs "$work/rootfs" --ref "$ref" \
    --entrypoint "$entry" --user "$user" --title "$bin" --version dev --output "$tar.tmp"
  mv "$tar.tmp" "$tar"
  rm -rf "$work"
  prune "$tar"
}

build_pause() {
  build_static_image "$CLUSTER_DIR/go/pause" pause "$PAUSE_IMAGE" "$(pause_tar)" /bin/pause 65535
}
build_webtool() {
  build_static_image "$CLUSTER_DIR/smoke/webtool" webtool "$WEBTOOL_IMAGE" "$(webtool_tar)" /bin/webtool 65532
}

# Point $BIN_DIR (inside the state dir) at the cached binaries.
link_bins() {
  mkdir -p "$BIN_DIR"
  local k e c p
  k=$(k8s_dir); e=$(etcd_dir); c=$(coredns_dir)
  for p in kube kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    ln -sfn "$k/$p" "$BIN_DIR/$p"
  done
  ln -sfn "$e/etcd" "$BIN_DIR/etcd"
  ln -sfn "$c/coredns" "$BIN_DIR/coredns"
}

main() {
  (($# == 0)) && set -- all
  local what
  for what in "$@"; do
    case $what in
      all)
        timed k8s build_k8s; timed etcd build_etcd; timed coredns build_coredns
        timed pause build_pause; timed webtool build_webtool ;;
      k8s|etcd|coredns|pause|webtool) timed "$what" "build_$what" ;;
      link) link_bins ;;
      paths) printf 'k8s=%s\netcd=%s\ncoredns=%s\npause=%s\nwebtool=%s\n' \
        "$(k8s_dir)" "$(etcd_dir)" "$(coredns_dir)" "$(pause_tar)" "$(webtool_tar)" ;;
      *) die "unknown build target $what" ;;
    esac
  done
}

[[ ${BASH_SOURCE[0]} == "$0" ]] && main "$@"
