#!/usr/bin/env bash
# The cluster load test: `kvclient load` (the sharded, topology-following client) in a pod,
# CONCURRENCY concurrent clients for DURATION seconds against a 3-shard store, with one
# rebalance (`kubectl scale kvstore 3→TO`) started SCALE_AT seconds into the run. At the end the
# load generator reads back every key it wrote and checks it holds its last acknowledged value.
# Before it, the same load runs on a store that is not rescaled (the baseline: what the
# rebalance costs in requests/s and latency; BENCH_LOAD_BASELINE=0 skips it).
# Prints the figures; exits non-zero if any request failed, any write was lost or wrong, or the
# store did not come back Available.
#
# usage: tests/bench/cluster_load.sh [OUT_JSON]
#   BENCH_LOAD_CONCURRENCY (64), BENCH_LOAD_DURATION (60), BENCH_LOAD_SCALE_AT (25),
#   BENCH_LOAD_TO (5), BENCH_LOAD_KEYS (10000), BENCH_LOAD_WRITE_RATIO (0.5)
#   BENCH_SETUP=0 when the cluster, images and operator are already prepared
#   (tests/bench/run.sh does that); otherwise tests/bench/cluster_setup.sh runs first.
#   KEEP_NS=1 leaves namespace bench-load behind for inspection.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
# shellcheck source=tests/bench/cluster_lib.sh
source tests/bench/cluster_lib.sh
OUT=${1:-}
CONCURRENCY=${BENCH_LOAD_CONCURRENCY:-64}
DURATION=${BENCH_LOAD_DURATION:-60}
SCALE_AT=${BENCH_LOAD_SCALE_AT:-25}
TO=${BENCH_LOAD_TO:-5}
KEYS=${BENCH_LOAD_KEYS:-10000}
NS=bench-load

if [[ ${BENCH_SETUP:-1} != 0 ]]; then
  tests/bench/cluster_setup.sh >/dev/null
fi
cluster_env "benchmark on"

WORK=$(mktemp -d)
scaler=""
cleanup() {
  local rc=$?
  [[ -n $scaler ]] && kill "$scaler" 2>/dev/null
  if [[ ${KEEP_NS:-0} != 1 ]]; then kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# run_load LABEL STORE SCALE(0|1): one load run against a fresh 3-shard store; the figures
# go to $WORK/LABEL.json and are printed.
run_load() {
  local label=$1 store=$2 scale=$3 code scale_rc=0 scale_started=""
  bench_store "$NS" "$store" 3
  bench_wait_available "$NS" "$store" 3 600
  log "$label: $CONCURRENCY clients for $DURATION s over $KEYS keys (write ratio ${BENCH_LOAD_WRITE_RATIO:-0.5})$( ((scale)) && echo "; scale 3→$TO at ${SCALE_AT} s")"
  bench_client_pod "$NS" "$label" load --kvstore "$store" --keys "$KEYS" --concurrency "$CONCURRENCY" \
    --duration "$DURATION" --write-ratio "${BENCH_LOAD_WRITE_RATIO:-0.5}" --prefix bench- --json
  bench_wait_running "$NS" "$label"
  : >"$WORK/$label-scale.json"; : >"$WORK/$label-scale.err"
  if ((scale)); then
    # The timed phase starts as the container does (no prefill), give or take the KVStore lookup.
    sleep "$SCALE_AT"
    scale_started=$(date -u +%H:%M:%S)
    python3 tests/bench/scale_timer.py "$NS" "$store" "$TO" 600 >"$WORK/$label-scale.json" 2>"$WORK/$label-scale.err" &
    scaler=$!
  fi
  code=$(bench_wait_exit "$NS" "$label" $((DURATION + 600)))
  if [[ -n $scaler ]]; then
    wait "$scaler" || scale_rc=$?
    scaler=""
  fi
  kubectl -n "$NS" logs "$label" >"$WORK/$label.log" 2>&1 || true
  python3 - "$WORK" "$label" "$code" "$scale" "$scale_rc" "$scale_started" "$SCALE_AT" "$TO" <<'PY'
import json, sys
work, label, code, scale, scale_rc, scale_started, scale_at, to = sys.argv[1:9]
log = open(f"{work}/{label}.log").read()
reports = [l for l in log.splitlines() if l.startswith("{")]
report = json.loads(reports[-1]) if reports else None
timing = None
if int(scale) and int(scale_rc) == 0:
    timing = json.loads(open(f"{work}/{label}-scale.json").read())
result = {"label": label, "exit_code": int(code), "report": report, "rebalance": bool(int(scale)),
          "scale": timing, "scale_at_s": float(scale_at) if int(scale) else None,
          "scale_to": int(to) if int(scale) else None, "scale_started_utc": scale_started or None,
          "scale_error": open(f"{work}/{label}-scale.err").read().strip() if int(scale) and int(scale_rc) else None}
if report is None:
    result["log_tail"] = log.splitlines()[-20:]
json.dump(result, open(f"{work}/{label}.json", "w"), indent=1)
print(f"== {label}")
if report is None:
    print("the load generator printed no report; its log ends with:\n" + "\n".join(log.splitlines()[-20:]))
    sys.exit(0)
v = report["verify"]
print(f"load: {report['concurrency']} clients, {report['duration_s']:.1f} s, {report['requests']} requests "
      f"({report['requests_per_s']:.0f}/s; {report['gets']} gets, {report['puts']} puts), exit code {code}")
print(f"latency: p50 {report['p50_ms']:.2f} ms, p99 {report['p99_ms']:.2f} ms, max {report['max_ms']:.2f} ms")
print(f"errors: {report['errors']} {report['errors_by_letter'] or ''}")
print(f"read-back: {v['keys_checked']} keys checked, {v['lost']} lost, {v['wrong']} wrong, "
      f"{v['unreadable']} unreadable, {v['stale_reads']} stale reads during the run")
if int(scale):
    if timing:
        print(f"rebalance 3→{to} started at {scale_at} s: Available again after {timing['seconds']:.1f} s, "
              f"{timing['keys_moved']} keys moved")
    else:
        print(f"rebalance 3→{to}: FAILED: {result['scale_error']}")
PY
  kubectl -n "$NS" delete kvs "$store" --wait=true --timeout=300s >/dev/null
}

bench_namespace "$NS"
labels=()
if [[ ${BENCH_LOAD_BASELINE:-1} == 1 ]]; then
  run_load steady steady 0
  labels+=(steady)
fi
run_load rebalance load 1
labels+=(rebalance)

python3 - "$WORK" "${OUT:-/dev/null}" "${labels[@]}" <<'PY'
import json, sys
work, out, labels = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {l: json.load(open(f"{work}/{l}.json")) for l in labels}
json.dump(runs, open(out, "w"), indent=1)
failed = []
for label, r in runs.items():
    rep = r["report"]
    if rep is None:
        failed.append(f"{label}: no report")
        continue
    v = rep["verify"]
    for what, n in (("errors", rep["errors"]), ("lost", v["lost"]), ("wrong", v["wrong"]),
                    ("unreadable", v["unreadable"]), ("stale reads", v["stale_reads"])):
        if n:
            failed.append(f"{label}: {n} {what}")
    if r["exit_code"] != 0:
        failed.append(f"{label}: kvclient exited {r['exit_code']}")
    if r["rebalance"] and r["scale"] is None:
        failed.append(f"{label}: the store did not come back Available ({r['scale_error']})")
if failed:
    print("LOAD TEST FAILED: " + "; ".join(failed))
    sys.exit(1)
print("load test passed: 0 errors, 0 lost, 0 wrong")
PY
