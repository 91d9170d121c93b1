#!/usr/bin/env bash
# Build OCI images of the project's binaries without a daemon and without pulling anything.
#
# The base filesystem is assembled "distroless style" from Debian packages
# (apt-get download libc6 libgcc-s1 ca-certificates; dpkg-deb -x), keeping only the dynamic
# loader, the glibc libraries, libgcc_s, the CA bundle, /etc/passwd with the nonroot user
# (uid 65532) and /tmp. tests/images/oci.py writes the single-layer OCI archive by hand.
#
# usage:
#   build.sh                 cargo build --release --locked -p kvserver -p kvclient -p operator,
#                            build kvstore/{kvserver,kvclient,operator}:dev, import them into the
#                            containerd of every local cluster node when it is running
#   build.sh project         same without the cargo build (binaries must already exist)
#   build.sh image --name REF --binary PATH [--entrypoint PATH] [--user UID:GID]
#                  [--max-mb N] [--version V] [--output TAR]
#                            one image from any dynamically linked (glibc) or static binary
#   build.sh import TAR...   import archives into every local cluster node's containerd (k8s.io namespace)
#   build.sh push REGISTRY   copy every archive built here to REGISTRY/<name>:<tag> (skopeo)
#   build.sh tag SRC DST     give image SRC a second name DST (same content) in every local cluster
#                            node's containerd, or in $KVSTORE_IMAGE_REGISTRY (skopeo) with
#                            KVSTORE_CLUSTER=existing: an upgrade to a changed image reference
#
# Outputs: $KVSTORE_CACHE/images/out/<name>-<tag>.tar (OCI archives).
set -euo pipefail
# shellcheck source=tests/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"

IMAGES_DIR="$REPO_ROOT/tests/images"
OUT_DIR="$CACHE/images/out"
DEB_DIR="$CACHE/images/debs"
BASE_PKGS=(libc6 libgcc-s1 ca-certificates)
VERSION="${KVSTORE_IMAGE_VERSION:-dev}"

# The project's images: name, binary (in $CARGO_TARGET_DIR/release), max size in MB.
PROJECT_IMAGES=(
  "kvstore/kvserver:$VERSION kvserver 25"
  "kvstore/kvclient:$VERSION kvclient 25"
  "kvstore/operator:$VERSION kvstore-operator 60"
)

# Extract the base packages once (keyed by their versions) into $CACHE/images/base-<hash>.
base_rootfs() {
  mkdir -p "$DEB_DIR"
  local p have=1
  for p in "${BASE_PKGS[@]}"; do compgen -G "$DEB_DIR/${p}_*.deb" >/dev/null || have=0; done
  if ((have == 0)); then
    log "apt-get download ${BASE_PKGS[*]}"
    (cd "$DEB_DIR" && apt-get download "${BASE_PKGS[@]}" >/dev/null 2>&1) ||
      { apt-get update >/dev/null && (cd "$DEB_DIR" && apt-get download "${BASE_PKGS[@]}" >/dev/null); }
  fi
  local key; key=$(cd "$DEB_DIR" && printf '%s\n' *.deb | sort | sha256sum | cut -c1-12)
  local base="$CACHE/images/base-$key"
  if [[ ! -d $base ]]; then
    local x; x=$(mktemp -d)
    for p in "$DEB_DIR"/*.deb; do dpkg-deb -x "$p" "$x"; done
    local r="$base.tmp"; rm -rf "$r"; mkdir -p "$r"
    local libdir=lib/x86_64-linux-gnu
    [[ -d $x/usr/$libdir && ! -e $x/$libdir/libc.so.6 ]] && libdir=usr/lib/x86_64-linux-gnu
    mkdir -p "$r/lib/x86_64-linux-gnu" "$r/lib64" "$r/etc/ssl/certs" "$r/tmp" "$r/home/nonroot" "$r/usr/local/bin"
    for p in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1; do
      cp -L "$x/$libdir/$p" "$r/lib/x86_64-linux-gnu/$p"
    done
    ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$r/lib64/ld-linux-x86-64.so.2"
    cat "$x"/usr/share/ca-certificates/mozilla/*.crt >"$r/etc/ssl/certs/ca-certificates.crt"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$r/etc/group"
    printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
    chmod 1777 "$r/tmp"
    rm -rf "$x"
    mv "$r" "$base"
  fi
  echo "$base"
}

# build_image REF BINARY ENTRYPOINT USER MAX_MB OUTPUT
build_image() {
  local ref=$1 bin=$2 entry=$3 user=$4 max_mb=$5 out=$6
  [[ -f $bin && -x $bin ]] || die "binary for $ref not found or not executable: $bin (build it first)"
  local base; base=$(base_rootfs)
  local missing
  missing=$(readelf -d "$bin" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
    while read -r lib; do [[ -e $base/lib/x86_64-linux-gnu/$lib ]] || echo "$lib"; done)
  [[ -z $missing ]] || die "$bin needs libraries the base image does not have: $missing"
  local work; work=$(mktemp -d)
  cp -a "$base" "$work/rootfs"
  mkdir -p "$work/rootfs$(dirname "$entry")"
  cp "$bin" "$work/rootfs$entry"
  chmod 0755 "$work/rootfs$entry"
  # The size limit applies to the unpacked image (stricter than the compressed archive).
  local unpacked; unpacked=$(du -sb "$work/rootfs" | cut -f1)
  local full=$ref
  [[ ${ref%%/*} == *.* || ${ref%%/*} == localhost* ]] || full="docker.io/$ref"
  mkdir -p "$(dirname "$out")"
  "$PYTHON" "$IMAGES_DIR/oci.py" --rootfs "$work/rootfs" --ref "$full" --entrypoint "$entry" \
    --user "$user" --owner "home/nonroot=65532:65532" --env "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --title "$(basename "${ref%%:*}")" --version "${ref##*:}" --output "$out"
  rm -rf "$work"
  local size; size=$(stat -c %s "$out")
  log "built $full: $((unpacked / 1024)) KiB unpacked, $((size / 1024)) KiB archive -> $out"
  if ((unpacked > max_mb * 1024 * 1024)); then
    die "$full is $((unpacked / 1024 / 1024)) MB unpacked, over its limit of $max_mb MB"
  fi
}

import_images() {
  local tar
  if [[ ${KVSTORE_CLUSTER:-local} == existing ]]; then
    log "KVSTORE_CLUSTER=existing: not importing; push with: tests/images/build.sh push \$KVSTORE_IMAGE_REGISTRY"
    return 0
  fi
  local socks sock
  # Every node's containerd (one with a single node): images are per containerd root.
  mapfile -t socks < <(running_containerd_socks)
  if ((${#socks[@]} == 0)); then
    log "local cluster not running: images left in $OUT_DIR (they are imported by the next 'build.sh import' or 'make images' with the cluster up)"
    return 0
  fi
  for tar in "$@"; do
    for sock in "${socks[@]}"; do
      log "importing $tar${socks[1]:+ into $sock}"
      ctr --address "$sock" -n k8s.io images import "$tar"
    done
  done
}

push_images() {
  local registry=${1:?usage: build.sh push REGISTRY} tar ref
  command -v skopeo >/dev/null || ensure_apt skopeo
  for tar in "$OUT_DIR"/*.tar; do
    ref=$("$PYTHON" -c 'import json,sys,tarfile; t=tarfile.open(sys.argv[1]); print(json.load(t.extractfile("index.json"))["manifests"][0]["annotations"]["io.containerd.image.name"])' "$tar")
    ref=${ref#docker.io/}
    log "pushing $ref to $registry/$ref"
    skopeo copy "oci-archive:$tar" "docker://$registry/$ref"
  done
}

tag_image() {
  local src=${1:?usage: build.sh tag SRC DST} dst=${2:?usage: build.sh tag SRC DST} sock
  if [[ ${KVSTORE_CLUSTER:-local} == existing ]]; then
    command -v skopeo >/dev/null || ensure_apt skopeo
    log "copying docker://$src to docker://$dst"
    skopeo copy "docker://$src" "docker://$dst"
    return 0
  fi
  local socks
  mapfile -t socks < <(running_containerd_socks)
  ((${#socks[@]} > 0)) || die "local cluster not running: no containerd to tag $src in"
  # containerd names images in full (docker.io/<repository>:<tag>).
  [[ $src == */*/* ]] || src=docker.io/$src
  [[ $dst == */*/* ]] || dst=docker.io/$dst
  for sock in "${socks[@]}"; do
    log "tagging $src as $dst${socks[1]:+ in $sock}"
    ctr --address "$sock" -n k8s.io images tag --force "$src" "$dst" >/dev/null
  done
}

out_path() { local r=${1#docker.io/}; r=${r//\//-}; echo "$OUT_DIR/${r/:/-}.tar"; }

build_project() {
  local spec ref bin max built=()
  for spec in "${PROJECT_IMAGES[@]}"; do
    read -r ref bin max <<<"$spec"
    build_image "$ref" "$CARGO_TARGET_DIR/release/$bin" "/usr/local/bin/$bin" 65532:65532 "$max" "$(out_path "$ref")"
    built+=("$(out_path "$ref")")
  done
  # The cluster smoke-test image travels with the project images (for KVSTORE_CLUSTER=existing pushes).
  "$CLUSTER_DIR/build.sh" webtool
  cp "$("$CLUSTER_DIR/build.sh" paths | sed -n 's/^webtool=//p')" "$OUT_DIR/kvstore-webtool-dev.tar"
  import_images "${built[@]}" "$OUT_DIR/kvstore-webtool-dev.tar"
}

main() {
  local cmd=${1:-all}
  (($#)) && shift
  case $cmd in
    all)
      log "cargo build --release --locked -p kvserver -p kvclient -p operator (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
      (cd "$REPO_ROOT" && cargo build --release --locked -p kvserver -p kvclient -p operator)
      build_project ;;
    project) build_project ;;
    image)
      local name="" bin="" entry="" user=65532:65532 max=100 out=""
      while (($#)); do
        case $1 in
          --name) name=$2 ;; --binary) bin=$2 ;; --entrypoint) entry=$2 ;; --user) user=$2 ;;
          --max-mb) max=$2 ;; --output) out=$2 ;; --version) VERSION=$2 ;;
          *) die "unknown option $1" ;;
        esac
        shift 2
      done
      [[ -n $name && -n $bin ]] || die "image needs --name and --binary"
      [[ -n $entry ]] || entry="/usr/local/bin/$(basename "$bin")"
      [[ -n $out ]] || out=$(out_path "$name")
      build_image "$name" "$bin" "$entry" "$user" "$max" "$out"
      import_images "$out" ;;
    import) import_images "$@" ;;
    push) push_images "$@" ;;
    tag) tag_image "$@" ;;
    *) die "unknown command $cmd (see the header of $0)" ;;
  esac
}

main "$@"
