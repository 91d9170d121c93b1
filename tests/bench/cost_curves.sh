#!/usr/bin/env bash
# Cost curves on the cluster (issue 16): how a store's costs grow with its data. For each size, a
# fresh 3-shard store is measured empty, then filled with KEYS keys of VALUE_BYTES each by the
# topology-following `kvclient load --prefill` (which reads every key back), and measured again:
#   - GET and SET requests/s (64 clients, 15 s each, over 10k probe keys) empty vs loaded;
#   - a kvserver's restart to Ready (kill -9 of shard 0's process), empty vs loaded;
#   - disk bytes on its volumes per key, vs the raw key + value bytes (space amplification);
#   - `kubectl scale` steps (3→4→3; the wide case 3→8→16→3): seconds to Available, keys/s and
#     MB/s in Copy, peak RSS of the operator and of the kvservers during each move.
# The empty store is each row's baseline, measured in the same run just before.
#
# usage: tests/bench/cost_curves.sh OUT_JSON    (cluster up, operator installed, images imported)
#   BENCH_COST_SIZES       key counts of 64-byte values (default "100000 1000000 10000000")
#   BENCH_COST_BIG_KEYS    keys of 16 KiB values (default 65536 = 1 GiB; 0 skips)
#   BENCH_COST_WIDE_KEYS   keys (64 B) of the 3→8→16→3 case (default 1000000; 0 skips)
#   BENCH_COST_LOAD_S      seconds of each GET or SET run (default 15)
#   KEEP_NS=1 leaves namespace bench-cost behind.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
# shellcheck source=tests/bench/cluster_lib.sh
source tests/bench/cluster_lib.sh
OUT=${1:?usage: cost_curves.sh OUT_JSON}
SIZES=${BENCH_COST_SIZES:-100000 1000000 10000000}
BIG_KEYS=${BENCH_COST_BIG_KEYS:-65536}
WIDE_KEYS=${BENCH_COST_WIDE_KEYS:-1000000}
LOAD_S=${BENCH_COST_LOAD_S:-15}
NS=bench-cost
WORK=$(mktemp -d)
sampler=""
cleanup() {
  local rc=$?
  [[ -n $sampler ]] && kill "$sampler" 2>/dev/null
  if [[ ${KEEP_NS:-0} != 1 ]]; then kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# client_json POD TIMEOUT_S ARG...: a kvclient pod run to its end; its JSON report on stdout.
client_json() { bench_client_json "$NS" "$@"; }

# throughput STORE LABEL: GET-only then SET-only runs over the probe keys; writes
# $WORK/STORE-LABEL-{get,set}.json.
throughput() {
  local store=$1 label=$2
  client_json "$store-$label-get" 600 load --kvstore "$store" --keys 10000 --prefix probe- \
    --prefill --write-ratio 0 --concurrency 64 --duration "$LOAD_S" --json >"$WORK/$store-$label-get.json"
  client_json "$store-$label-set" 600 load --kvstore "$store" --keys 10000 --prefix probe- \
    --write-ratio 1 --concurrency 64 --duration "$LOAD_S" --json >"$WORK/$store-$label-set.json"
  log "$store $label: GET $(jq -r .requests_per_s "$WORK/$store-$label-get.json") req/s, SET $(jq -r .requests_per_s "$WORK/$store-$label-set.json") req/s"
}

# timed_scale STORE TO: one `kubectl scale`, timed, with peak RSS sampled throughout;
# writes $WORK/STORE-scale-TO.json ({"scale": ..., "rss": ...}).
timed_scale() {
  local store=$1 to=$2 stop="$WORK/stop-$1-$2"
  python3 tests/bench/cost_probe.py rss "$NS" "$store" "$stop" >"$WORK/$store-rss-$to.json" &
  sampler=$!
  python3 tests/bench/scale_timer.py "$NS" "$store" "$to" 1800 >"$WORK/$store-timer-$to.json"
  touch "$stop"; wait "$sampler"; sampler=""
  jq -n --slurpfile s "$WORK/$store-timer-$to.json" --slurpfile r "$WORK/$store-rss-$to.json" \
    '{scale: $s[0], rss: $r[0]}' >"$WORK/$store-scale-$to.json"
  log "$store →$to: $(jq -c '{s: .scale.seconds, keys: .scale.keys_moved, kps: .scale.keys_per_s_copy, op_kib: .rss.operator_peak_kib, kv_kib: .rss.kvserver_peak_kib}' "$WORK/$store-scale-$to.json")"
}

# cost_case STORE KEYS VALUE_BYTES STEP...: one row of the curves; appends it to $WORK/cases.jsonl.
cost_case() {
  local store=$1 keys=$2 vbytes=$3 started prefill_s steps=() s; shift 3
  steps=("$@")
  log "$store: $keys keys of $vbytes B, scales ${steps[*]}"
  bench_store "$NS" "$store" 3 8Gi
  bench_wait_available "$NS" "$store" 3 600
  throughput "$store" empty
  python3 tests/bench/cost_probe.py restart "$NS" "$store-0" >"$WORK/$store-restart-empty.json"
  bench_wait_available "$NS" "$store" 3 300
  log "$store empty restart: $(cat "$WORK/$store-restart-empty.json")"

  started=$SECONDS
  client_json "$store-prefill" 7200 load --kvstore "$store" --keys "$keys" --prefix cost- \
    --prefill --value-bytes "$vbytes" --write-ratio 0 --concurrency 64 --duration 1 --json \
    >"$WORK/$store-prefill.json"
  prefill_s=$((SECONDS - started))
  log "$store prefill + read-back: $prefill_s s, $(jq -c '{checked: .verify.keys_checked, lost: .verify.lost, wrong: .verify.wrong, errors}' "$WORK/$store-prefill.json")"
  throughput "$store" loaded
  python3 tests/bench/cost_probe.py disk "$NS" "$store" >"$WORK/$store-disk.json"
  python3 tests/bench/cost_probe.py restart "$NS" "$store-0" >"$WORK/$store-restart-loaded.json"
  bench_wait_available "$NS" "$store" 3 300
  log "$store loaded restart: $(cat "$WORK/$store-restart-loaded.json")"
  for s in "${steps[@]}"; do timed_scale "$store" "$s"; done

  python3 - "$WORK" "$store" "$keys" "$vbytes" "$prefill_s" "${steps[@]}" >>"$WORK/cases.jsonl" <<'PY'
import json, sys
work, store, keys, vbytes, prefill_s, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:]
load = lambda n: json.load(open(f"{work}/{store}-{n}.json"))
# Raw bytes: every key "cost-<i>" and its value, as the load wrote them.
raw = sum(len(f"cost-{i}") for i in range(keys)) + keys * vbytes
disk = load("disk")
print(json.dumps({
    "store": store, "keys": keys, "value_bytes": vbytes, "raw_bytes": raw, "prefill_s": prefill_s,
    "prefill": load("prefill"),
    "empty": {"get": load("empty-get"), "set": load("empty-set"), "restart": load("restart-empty")},
    "loaded": {"get": load("loaded-get"), "set": load("loaded-set"), "restart": load("restart-loaded")},
    "disk": disk, "disk_per_raw": round(disk["bytes"] / raw, 3) if raw else None,
    "scales": [load(f"scale-{s}") for s in steps],
}))
PY
  kubectl -n "$NS" delete kvs "$store" --wait=true --timeout=600s >/dev/null
  kubectl -n "$NS" delete pod -l app.kubernetes.io/name=kvclient --wait=false >/dev/null
}

bench_namespace "$NS"
: >"$WORK/cases.jsonl"
for keys in $SIZES; do cost_case "k$keys" "$keys" 64 4 3; done
((BIG_KEYS > 0)) && cost_case "big$BIG_KEYS" "$BIG_KEYS" 16384 4 3
((WIDE_KEYS > 0)) && cost_case "wide$WIDE_KEYS" "$WIDE_KEYS" 64 8 16 3
jq -s '{cases: .}' "$WORK/cases.jsonl" >"$OUT"

# kvclient exits 1 on a lost or wrong key (client_json fails the run then); this is the
# report's own check that every key was read back.
bad=$(jq '[.cases[] | .keys - .prefill.verify.keys_checked + .prefill.verify.lost + .prefill.verify.wrong] | add' "$OUT")
if [[ $bad != 0 ]]; then
  log "READ-BACK FAILED: $bad keys lost or wrong after their prefill"
  exit 1
fi
log "cost curves written to $OUT"
