#!/usr/bin/env bash
# The replication benchmark (issue 14, docs/replication.md section 11): a factor-3 store beside a
# factor-1 store, 3 shards each, the same durability, side by side in one run on the local cluster.
#   throughput  GET and SET req/s and p99 of both, per durability (tests/bench/repl_throughput.sh)
#   failover    kill -9 of a shard leader, KILLS times: kill -> first acknowledged write
#   catchup     a follower cut off while ~CATCHUP_KEYS writes reach its shard, healed -> in sync
#   rebuild     a follower's PVC and pod deleted on that shard -> new copy in sync, keys/s
#                (the three fault parts: tests/bench/repl_faults.sh, on the factor-3 store of the
#                first durability, as root on the cluster's node)
# The figures are printed beside their targets (met or missed), never asserted: the exit code
# says only whether every part measured. tests/bench/render.py puts them in BENCHMARKS.md.
#
# usage: tests/bench/replication.sh [OUT_JSON]
#   BENCH_REPL_SYNCS ("batch always"): durabilities (--sync) measured for throughput
#   BENCH_REPL_PARTS ("throughput failover catchup rebuild"): the parts to run
#   BENCH_REPL_KEYS (100000), BENCH_REPL_DURATION (30), BENCH_REPL_CONCURRENCY (64),
#   BENCH_REPL_VALUE_BYTES (64), BENCH_REPL_KILLS (10), BENCH_REPL_CATCHUP_KEYS (1000000: writes
#   the cut follower misses; the store gets that many per shard), BENCH_REPL_SHARD (0),
#   BENCH_REPL_SHARDS (3), BENCH_REPL_FACTOR (3), BENCH_REPL_LIMIT_S (7200)
#   BENCH_SETUP=0 when the cluster, images and operator are already prepared
#   (tests/bench/run.sh does that); otherwise tests/bench/cluster_setup.sh runs first.
#   KEEP_NS=1 leaves namespace bench-repl behind for inspection.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
# shellcheck source=tests/bench/cluster_lib.sh
source tests/bench/cluster_lib.sh
OUT=${1:-/dev/null}
SYNCS=${BENCH_REPL_SYNCS:-batch always}
PARTS=${BENCH_REPL_PARTS:-throughput failover catchup rebuild}
SHARDS=${BENCH_REPL_SHARDS:-3}
FACTOR=${BENCH_REPL_FACTOR:-3}
NS=bench-repl

if [[ ${BENCH_SETUP:-1} != 0 ]]; then
  tests/bench/cluster_setup.sh >/dev/null
fi
cluster_env "benchmark on"
if ! kubectl get --raw /readyz >/dev/null 2>&1; then
  log "no cluster answers at KUBECONFIG=$KUBECONFIG: start it (make cluster-up) or run without BENCH_SETUP=0"
  exit 1
fi
if [[ $(id -u) != 0 ]]; then
  log "WARNING: not root: failover and catchup kill processes and enter network namespaces on the node, and will fail"
fi

WORK=$(mktemp -d)
bench_cleanup_on_exit "$NS" "$WORK"
: >"$WORK/parts.tsv"
wants() { [[ " $PARTS " == *" $1 "* ]]; }
# run_part NAME COMMAND...: one part as its own process (its own strict mode); records
# NAME, ok or the exit code, and its seconds; never aborts the run.
run_part() {
  local name=$1 started=$SECONDS state=ok; shift
  log "replication $name: $*"
  "$@" || state="failed (exit $?)"
  printf '%s\t%s\t%s\n' "$name" "$state" $((SECONDS - started)) >>"$WORK/parts.tsv"
  log "replication $name: $state in $((SECONDS - started)) s"
}

bench_namespace "$NS"
read -r -a syncs <<<"$SYNCS"
first=${syncs[0]:?BENCH_REPL_SYNCS is empty}
if wants throughput; then
  for d in "${syncs[@]}"; do
    keep=0; [[ $d == "$first" ]] && keep=1
    run_part "throughput-$d" env BENCH_REPL_KEEP_STORE=$keep \
      tests/bench/repl_throughput.sh "$NS" "$d" "$WORK/throughput-$d.json"
  done
fi

faults=()
for p in failover catchup rebuild; do wants "$p" && faults+=("$p"); done
if ((${#faults[@]})); then
  store=three-$first
  # No other store may share the node's CPU with the faults (a throughput part that failed
  # midway leaves its stores behind).
  for other in $(kubectl -n "$NS" get kvs -o jsonpath='{.items[*].metadata.name}'); do
    [[ $other == "$store" ]] || kubectl -n "$NS" delete kvs "$other" --wait=true --timeout=300s >/dev/null ||
      log "could not delete store $other: it shares the node with the fault parts"
  done
  # Already there when the throughput part kept it; made here otherwise (apply is idempotent).
  if bench_replicated_store "$NS" "$store" "$SHARDS" "$FACTOR" "$first" 8Gi &&
    bench_wait_available "$NS" "$store" "$SHARDS" 900; then
    for p in "${faults[@]}"; do
      run_part "$p" tests/bench/repl_faults.sh "$NS" "$store" "$p" "$WORK/$p.json"
    done
  else
    for p in "${faults[@]}"; do printf '%s\tfailed (no store %s)\t0\n' "$p" "$store" >>"$WORK/parts.tsv"; done
  fi
fi

python3 tests/bench/repl_report.py "$WORK" "$OUT"
if grep -qv $'\tok\t' "$WORK/parts.tsv"; then
  log "REPLICATION BENCHMARK INCOMPLETE: $(grep -v $'\tok\t' "$WORK/parts.tsv" | cut -f1,2 | tr '\t\n' ': ')"
  exit 1
fi
