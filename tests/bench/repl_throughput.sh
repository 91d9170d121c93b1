#!/usr/bin/env bash
# GET and SET throughput of a factor-3 store beside a factor-1 store (docs/replication.md section
# 11), both SHARDS shards with the same durability (the kvserver's --sync), on the same cluster
# in the same run: `kvclient load --kvstore` (the topology-following client, which sends to a
# shard's leader by its x-kv-leader hints) in a pod, CONCURRENCY workers. GET: DURATION s of
# reads only after a prefill of KEYS keys. SET: DURATION s of writes only over KEYS other keys.
# The runs alternate between the stores (factor 1 GET, factor 3 GET, factor 1 SET, factor 3
# SET), so background load shifts both sides alike. Part of tests/bench/replication.sh.
#
# usage: tests/bench/repl_throughput.sh NS DURABILITY OUT_JSON   (cluster up, operator installed)
#   BENCH_REPL_KEYS (100000), BENCH_REPL_DURATION (30), BENCH_REPL_CONCURRENCY (64),
#   BENCH_REPL_VALUE_BYTES (64), BENCH_REPL_SHARDS (3), BENCH_REPL_FACTOR (3)
#   BENCH_REPL_KEEP_STORE=1 leaves the factor-3 store `three-DURABILITY` for the fault parts.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
# shellcheck source=tests/bench/cluster_lib.sh
source tests/bench/cluster_lib.sh
NS=${1:?usage: repl_throughput.sh NS DURABILITY OUT_JSON}
DURABILITY=${2:?usage: repl_throughput.sh NS DURABILITY OUT_JSON}
OUT=${3:?usage: repl_throughput.sh NS DURABILITY OUT_JSON}
KEYS=${BENCH_REPL_KEYS:-100000}
DURATION=${BENCH_REPL_DURATION:-30}
CONCURRENCY=${BENCH_REPL_CONCURRENCY:-64}
VALUE_BYTES=${BENCH_REPL_VALUE_BYTES:-64}
SHARDS=${BENCH_REPL_SHARDS:-3}
FACTOR=${BENCH_REPL_FACTOR:-3}
cluster_env "benchmark on"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

one=one-$DURABILITY three=three-$DURABILITY
log "throughput ($DURABILITY): stores $one (factor 1) and $three (factor $FACTOR), $SHARDS shards each"
bench_replicated_store "$NS" "$one" "$SHARDS" 1 "$DURABILITY" 2Gi
bench_replicated_store "$NS" "$three" "$SHARDS" "$FACTOR" "$DURABILITY" 8Gi
bench_wait_available "$NS" "$one" "$SHARDS" 600
bench_wait_available "$NS" "$three" "$SHARDS" 900
python3 tests/bench/repl_probe.py settled "$NS" "$three" "$SHARDS" "$FACTOR" 900 >/dev/null

# measure STORE OP: one load run; its report goes to $WORK/STORE-OP.json.
measure() {
  local store=$1 op=$2 limit=$((DURATION + 900))
  if [[ $op == get ]]; then
    bench_client_json "$NS" "$store-get" "$limit" load --kvstore "$store" --keys "$KEYS" --prefix get- \
      --prefill --write-ratio 0 --value-bytes "$VALUE_BYTES" --concurrency "$CONCURRENCY" \
      --duration "$DURATION" --json >"$WORK/$store-get.json"
  else
    bench_client_json "$NS" "$store-set" "$limit" load --kvstore "$store" --keys "$KEYS" --prefix set- \
      --write-ratio 1 --value-bytes "$VALUE_BYTES" --concurrency "$CONCURRENCY" \
      --duration "$DURATION" --json >"$WORK/$store-set.json"
  fi
  log "$store $op: $(jq -c '{rps: .requests_per_s, p99_ms, errors, lost: .verify.lost, wrong: .verify.wrong}' "$WORK/$store-$op.json")"
  kubectl -n "$NS" delete pod "$store-$op" --wait=false >/dev/null
}

for op in get set; do
  measure "$one" "$op"
  measure "$three" "$op"
done

jq -n --arg d "$DURABILITY" --argjson factor "$FACTOR" --argjson shards "$SHARDS" \
  --argjson keys "$KEYS" --argjson duration "$DURATION" --argjson concurrency "$CONCURRENCY" \
  --argjson value_bytes "$VALUE_BYTES" \
  --slurpfile g1 "$WORK/$one-get.json" --slurpfile s1 "$WORK/$one-set.json" \
  --slurpfile g3 "$WORK/$three-get.json" --slurpfile s3 "$WORK/$three-set.json" \
  '{durability: $d, factor: $factor, shards: $shards, keys: $keys, duration_s: $duration,
    concurrency: $concurrency, value_bytes: $value_bytes,
    factor1: {get: $g1[0], set: $s1[0]}, replicated: {get: $g3[0], set: $s3[0]}}' >"$OUT"

kubectl -n "$NS" delete kvs "$one" --wait=true --timeout=300s >/dev/null
if [[ ${BENCH_REPL_KEEP_STORE:-0} != 1 ]]; then
  kubectl -n "$NS" delete kvs "$three" --wait=true --timeout=300s >/dev/null
fi
