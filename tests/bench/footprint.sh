#!/usr/bin/env bash
# Footprint on the cluster: resident memory of the idle operator and of idle kvserver shards
# (a fresh 3-shard store, no keys, no clients), read on the node from /proc (VmRSS of the
# processes in each pod's cgroup), and the sizes of the project's OCI images beside the cluster's
# pause image and the distroless-style base filesystem the images are built on.
#
# usage: tests/bench/footprint.sh OUT_JSON    (cluster up, operator installed, images built)
#   BENCH_IDLE_S (default 15): how long the store sits idle before the reading.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
# shellcheck source=tests/bench/cluster_lib.sh
source tests/bench/cluster_lib.sh
OUT=${1:?usage: footprint.sh OUT_JSON}
NS=bench-footprint
WORK=$(mktemp -d)
cleanup() {
  local rc=$?
  kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

bench_namespace "$NS"
bench_store "$NS" idle 3
bench_wait_available "$NS" idle 3 600
log "idle for ${BENCH_IDLE_S:-15} s, then reading VmRSS"
sleep "${BENCH_IDLE_S:-15}"
python3 tests/bench/footprint.py pods kvstore-system app.kubernetes.io/name=kvstore-operator >"$WORK/operator.json"
python3 tests/bench/footprint.py pods "$NS" app.kubernetes.io/instance=idle >"$WORK/kvserver.json"

: >"$WORK/images.jsonl"
for name in kvserver kvclient operator; do
  python3 tests/bench/footprint.py image "kvstore/$name:$IMAGE_TAG" "$KVSTORE_CACHE/images/out/kvstore-$name-$IMAGE_TAG.tar" >>"$WORK/images.jsonl"
done
pause=$(tests/cluster/build.sh paths | sed -n 's/^pause=//p')
[[ -f $pause ]] && python3 tests/bench/footprint.py image "pause (the cluster's sandbox image, static Go, FROM scratch)" "$pause" >>"$WORK/images.jsonl"
base=$(find "$KVSTORE_CACHE/images" -maxdepth 1 -type d -name 'base-*' -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
[[ -n $base ]] && python3 tests/bench/footprint.py dir "distroless-style base (glibc, libgcc_s, CA bundle; no binary)" "$base" >>"$WORK/images.jsonl"

python3 - "$WORK" >"$OUT" <<'PY'
import json, sys
w = sys.argv[1]
print(json.dumps({
    "operator": json.load(open(f"{w}/operator.json")),
    "kvserver": json.load(open(f"{w}/kvserver.json")),
    "images": [json.loads(l) for l in open(f"{w}/images.jsonl") if l.strip()],
}, indent=1))
PY
log "footprint written to $OUT"
