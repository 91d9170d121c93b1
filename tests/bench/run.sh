#!/usr/bin/env bash
# `make bench`: every shipped benchmark beside its baseline, measured in the same run, and
# BENCHMARKS.md rendered from the machine-readable results (tests/bench/render.py); no figure
# in it is typed by hand.
#
#   1. release build of the binaries
#   2. loopback: kvserver GET/SET vs redis-server, nginx, Flask and a bare axum server
#      (kvserver/bench/run.sh), where kvserver's time goes (kvserver/bench/profile.sh) and
#      user-space instructions per request of each server (kvserver/bench/instructions.sh);
#      migration keys/s of the copy engine vs one request per key (tests/bench/migration.sh)
#   3. cluster (tests/bench/cluster_setup.sh: local cluster, images, operator):
#      scale 3→5→2 with 100k keys vs an empty store (scale_e2e.sh), footprint (footprint.sh),
#      the 64-client load test with a rebalance in the middle (cluster_load.sh), cost curves at
#      100k, 1M and 10M keys and 1 GiB of 16 KiB values (cost_curves.sh), replication: factor 3
#      beside factor 1, GET/SET, failover, catch-up and rebuild (replication.sh)
#   4. BENCHMARKS.md at the repo root
#
# usage: tests/bench/run.sh
#   BENCH_QUICK=1     smaller settings for development (short wrk runs, fewer keys, 30 s load)
#   BENCH_OUT=DIR     where the raw results go (default $KVSTORE_CACHE/bench/<UTC time>)
#   BENCH_MD=FILE     where the report goes (default BENCHMARKS.md at the repo root)
#   BENCH_SKIP=...    space-separated parts to skip: kvserver profile instructions migration scale footprint load cost replication
#   KEEP_CLUSTER=1    leave the local cluster up even if this run started it
# Exits non-zero if any part failed (the report is still written, naming what failed).
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
OUT=${BENCH_OUT:-$KVSTORE_CACHE/bench/$(date -u +%Y%m%dT%H%M%SZ)}
MD=${BENCH_MD:-$REPO_ROOT/BENCHMARKS.md}
mkdir -p "$OUT"
# heading MESSAGE: a log line set apart from the output of the part before it.
heading() { echo >&2; log "$@"; }
skip() { [[ " ${BENCH_SKIP:-} " == *" $1 "* ]]; }

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  # Still three rounds: the floors of issue 16 are medians of three interleaved rounds.
  KV_DURATION=3s KV_ROUNDS=3 PROFILE_DURATION=3s MIG_KEYS=20000 MIG_BOOK_KEYS=2000 SCALE_KEYS=20000
  LOAD_DURATION=30 LOAD_SCALE_AT=12
  COST_SIZES="20000 100000" COST_BIG_KEYS=2048 COST_WIDE_KEYS=100000
  # Replication (tests/bench/replication.sh reads these; a value set by the caller wins).
  export BENCH_REPL_KEYS=${BENCH_REPL_KEYS:-20000} BENCH_REPL_DURATION=${BENCH_REPL_DURATION:-10}
  export BENCH_REPL_KILLS=${BENCH_REPL_KILLS:-3} BENCH_REPL_CATCHUP_KEYS=${BENCH_REPL_CATCHUP_KEYS:-20000}
  export BENCH_REPL_SYNCS=${BENCH_REPL_SYNCS:-batch}
else
  KV_DURATION=10s KV_ROUNDS=3 PROFILE_DURATION=5s MIG_KEYS=100000 MIG_BOOK_KEYS=10000 SCALE_KEYS=100000
  LOAD_DURATION=60 LOAD_SCALE_AT=25
  COST_SIZES="100000 1000000 10000000" COST_BIG_KEYS=65536 COST_WIDE_KEYS=1000000
fi
# BENCH_COST_SIZES etc. (tests/bench/cost_curves.sh) override the sizes of either setting;
# BENCH_REPL_* (tests/bench/replication.sh) too.


declare -A STATUS=() SECS=()
part() { # part NAME COMMAND...: runs one benchmark, records ok/failed, never aborts the run
  local name=$1; shift
  if skip "$name"; then STATUS[$name]=skipped; return 0; fi
  heading "$name: $*"
  local started=$SECONDS
  if "$@"; then STATUS[$name]=ok; else STATUS[$name]="failed (exit $?)"; fi
  SECS[$name]=$((SECONDS - started))
  heading "$name: ${STATUS[$name]} in ${SECS[$name]} s"
}

brought_up=""
# shellcheck disable=SC2317  # called by the EXIT trap
finish() {
  local rc=$?
  if [[ $brought_up == brought-up && ${KEEP_CLUSTER:-0} != 1 ]]; then
    heading "taking down the local cluster this run started (KEEP_CLUSTER=1 keeps it)"
    tests/cluster/down.sh || heading "cluster-down reported an error"
  fi
  exit "$rc"
}
trap finish EXIT

python3 tests/bench/machine.py start >"$OUT/machine-start.json"
heading "results go to $OUT; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

heading "release build"
started=$SECONDS
cargo build --release --locked -p kvserver -p kvclient -p operator
cargo build --release --locked -p kvserver --example inmem_baseline
cargo build --release --locked -p operator --example migrate_bench
SECS[build]=$((SECONDS - started))

part kvserver env ROUNDS="$KV_ROUNDS" KVSERVER_BENCH_TSV="$OUT/kvserver.tsv" kvserver/bench/run.sh "$KV_DURATION"
part profile kvserver/bench/profile.sh "$OUT/profile.json" "$PROFILE_DURATION"
part instructions kvserver/bench/instructions.sh "$OUT/instructions.json" "$PROFILE_DURATION"
part migration env PROFILE=release BOOK_KEYS="$MIG_BOOK_KEYS" MIGRATION_BENCH_JSON="$OUT/migration.json" \
  tests/bench/migration.sh "$MIG_KEYS"

cluster_parts=0
for p in scale footprint load cost replication; do skip "$p" || cluster_parts=1; done
if ((cluster_parts)); then
  heading "cluster: tests/bench/cluster_setup.sh"
  started=$SECONDS
  if brought_up=$(tests/bench/cluster_setup.sh); then
    SECS[cluster-setup]=$((SECONDS - started))
    cluster_env "benchmark on"
    part scale env BENCH_SCALE_KEYS="$SCALE_KEYS" tests/bench/scale_e2e.sh "$OUT/scale.json"
    part footprint tests/bench/footprint.sh "$OUT/footprint.json"
    part load env BENCH_SETUP=0 BENCH_LOAD_DURATION="$LOAD_DURATION" BENCH_LOAD_SCALE_AT="$LOAD_SCALE_AT" \
      tests/bench/cluster_load.sh "$OUT/load.json"
    part replication env BENCH_SETUP=0 tests/bench/replication.sh "$OUT/replication.json"
  else
    for p in scale footprint load cost replication; do skip "$p" || STATUS[$p]="failed (cluster setup)"; done
  fi
fi

python3 tests/bench/machine.py end >"$OUT/machine-end.json"
python3 - "$OUT/status.json" "${BENCH_QUICK:-0}" "${!STATUS[@]}" -- "${STATUS[@]}" -- "${!SECS[@]}" -- "${SECS[@]}" <<'PY'
import json, sys
a = sys.argv[3:]
cuts = [i for i, x in enumerate(a) if x == "--"]
names, states = a[:cuts[0]], a[cuts[0] + 1:cuts[1]]
timed, secs = a[cuts[1] + 1:cuts[2]], a[cuts[2] + 1:]
json.dump({"quick": sys.argv[2] == "1", "parts": dict(zip(names, states)),
           "seconds": {k: int(v) for k, v in zip(timed, secs)}}, open(sys.argv[1], "w"))
PY
python3 tests/bench/render.py "$OUT" >"$MD"
heading "wrote $MD (raw results in $OUT)"
failed=0
for p in "${!STATUS[@]}"; do
  [[ ${STATUS[$p]} == ok || ${STATUS[$p]} == skipped ]] || { heading "FAILED: $p: ${STATUS[$p]}"; failed=1; }
done
exit "$failed"
