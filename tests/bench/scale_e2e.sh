#!/usr/bin/env bash
# End-to-end scale benchmark on the cluster: the time from `kubectl scale kvstore` to the store
# being Available again, 3→5 then 5→2, for a store holding KEYS keys, against the same scales
# of an empty store in the same run (the baseline: pod start, volumes, topology pushes, with
# nothing to copy). The keys are written and read back by the topology-following kvclient in
# screen mode (`--keys N --iterations 1`: key-i holds "key-i"; one round writes every missing
# key, a read-only round counts hits), so the read-back after 5→2 checks every value.
#
# usage: tests/bench/scale_e2e.sh OUT_JSON      (cluster up, operator installed, images imported)
#   BENCH_SCALE_KEYS (default 100000), BENCH_SCALE_NS (default bench-scale)
#   KEEP_NS=1 leaves the namespace behind for inspection.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
# shellcheck source=tests/bench/cluster_lib.sh
source tests/bench/cluster_lib.sh
OUT=${1:?usage: scale_e2e.sh OUT_JSON}
KEYS=${BENCH_SCALE_KEYS:-100000}
NS=${BENCH_SCALE_NS:-bench-scale}
WORK=$(mktemp -d)
bench_cleanup_on_exit "$NS" "$WORK"

# scale_pair STORE: 3→5 then 5→2, each timed; writes $WORK/STORE-35.json and -52.json.
scale_pair() {
  log "$1: kubectl scale 3→5"
  python3 tests/bench/scale_timer.py "$NS" "$1" 5 900 >"$WORK/$1-35.json"
  log "$1: 3→5 $(cat "$WORK/$1-35.json")"
  log "$1: kubectl scale 5→2"
  python3 tests/bench/scale_timer.py "$NS" "$1" 2 900 >"$WORK/$1-52.json"
  log "$1: 5→2 $(cat "$WORK/$1-52.json")"
}

# screen_round POD ARG...: one round of the screen-mode client over KEYS keys; prints its counts.
screen_round() {
  local pod=$1 code log; shift
  bench_client_pod "$NS" "$pod" --kvstore full --keys "$KEYS" --iterations 1 --concurrency 64 "$@"
  code=$(bench_wait_exit "$NS" "$pod" 900)
  log=$(kubectl -n "$NS" logs "$pod")
  if [[ $code != 0 ]]; then log "$pod exited $code:"; printf '%s\n' "$log" | tail -n 20 >&2; return 1; fi
  bench_screen_counts "$log"
}

bench_namespace "$NS"

log "baseline: an empty 3-shard store"
bench_store "$NS" empty 3
bench_wait_available "$NS" empty 3 600
scale_pair empty
kubectl -n "$NS" delete kvs empty --wait=true --timeout=300s >/dev/null

log "a 3-shard store with $KEYS keys"
bench_store "$NS" full 3
bench_wait_available "$NS" full 3 600
started=$SECONDS
screen_round prefill >"$WORK/prefill.json"
prefill_s=$((SECONDS - started))
log "prefill ($prefill_s s): $(cat "$WORK/prefill.json")"
scale_pair full
screen_round verify --readonly >"$WORK/verify.json"
log "read-back after 3→5→2: $(cat "$WORK/verify.json")"

python3 - "$WORK" "$KEYS" "$prefill_s" >"$OUT" <<'PY'
import json, sys
work, keys, prefill_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load = lambda n: json.load(open(f"{work}/{n}.json"))
print(json.dumps({
    "keys": keys, "prefill_s": prefill_s,
    "prefill": load("prefill"), "verify": load("verify"),
    "empty": [load("empty-35"), load("empty-52")],
    "full": [load("full-35"), load("full-52")],
}, indent=1))
PY
verify_h=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verify"].get("h", 0))' "$OUT")
if [[ $verify_h != "$KEYS" ]]; then
  log "READ-BACK FAILED: $verify_h of $KEYS keys hold their value after 3→5→2 ($(cat "$WORK/verify.json"))"
  exit 1
fi
log "all $KEYS keys read back with their values after 3→5→2"
