#!/usr/bin/env bash
# kvserver benchmark: GET and SET requests/s, p50 and p99 (wrk -t2 -c50 -d10s, the book's routes,
# 1000 keys, 32-byte values) against
#   (a) the chapter's Flask server (flask_server.py) on Flask's development server,
#   (b) a bare in-memory axum server (examples/inmem_baseline.rs),
#   (c) kvserver with durable storage, --sync batch and --sync always.
# Prints a markdown table with ratios. Not a test: numbers depend on the machine.
# Usage: kvserver/bench/run.sh [duration, default 10s]   (ROUNDS=3 by default)
#   KVSERVER_BENCH_TSV=FILE also writes the medians there for tests/bench/run.sh, one row per
#   server and op: "op<TAB>server<TAB>req/s<TAB>p50 ms<TAB>p99 ms<TAB>errors", plus one row per
#   server "rss<TAB>server<TAB>idle VmRSS KiB" read from /proc right after it came up.
#   KVSERVER_BENCH_BASE=PATH adds another kvserver binary (e.g. an earlier commit's release build)
#   as base-batch and base-always, measured in the same interleaved rounds: a refactor's
#   before/after figures from one run.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib/common.sh" bench || exit 1
BENCH_DIR=kvserver/bench
DURATION=${1:-10s}
WRK_ARGS=(-t2 -c50 -d"$DURATION" --latency)

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
VENV=$KVSTORE_CACHE/bench-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import flask' 2>/dev/null; then
  echo "installing flask into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q flask
fi
cargo build --release -q -p kvserver --bin kvserver --example inmem_baseline
BIN=$CARGO_TARGET_DIR/release

WORK=$(mktemp -d)
trap 'cleanup' EXIT

wait_up() { # port
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$1/allKeys" >/dev/null && return 0
    sleep 0.05
  done
  echo "server on port $1 did not come up" >&2; return 1
}

# wrk's summary -> "<req/s> <p50 ms> <p99 ms> <errors>" (errors: non-2xx answers + socket errors)
measure() { # port script
  wrk "${WRK_ARGS[@]}" -s "$BENCH_DIR/$2" "http://127.0.0.1:$1" | awk '
    function ms(v,   unit) { unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v)
                             return (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses/ { errors += $NF }
    /Socket errors/ { for (i = 3; i <= NF; i++) { v = $i; gsub(/,/, "", v); if (v ~ /^[0-9]+$/) errors += v } }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, errors }'
}

# Every server runs at once; rounds alternate between them and each figure is the median of
# ROUNDS runs, so background load on the machine hits every server alike.
ROUNDS=${ROUNDS:-3}
declare -A PORT PIDS RSS
start() { # name port command...
  local name=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 & PIDS[$name]=$!
  PORT[$name]=$port
  wait_up "$port"
  # Idle footprint: resident set right after the first answer (`env` execs, so the PID is the server's).
  RSS[$name]=$(awk '/^VmRSS:/ { print $2 }' "/proc/${PIDS[$name]}/status")
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
cleanup() { stop_all; rm -rf "$WORK"; }

NAMES=(flask inmem kvserver-batch kvserver-always)
mkdir -p "$WORK/flask"
start flask 18601 env DATA_DIR="$WORK/flask" "$VENV/bin/python" "$BENCH_DIR/flask_server.py" 18601
start inmem 18602 "$BIN/examples/inmem_baseline" 18602
start kvserver-batch 18603 env RUST_LOG=warn "$BIN/kvserver" --bind 127.0.0.1 --port 18603 --ops-port 18604 \
  --data-dir "$WORK/kv-batch" --sync batch --drain-delay 0s
start kvserver-always 18605 env RUST_LOG=warn "$BIN/kvserver" --bind 127.0.0.1 --port 18605 --ops-port 18606 \
  --data-dir "$WORK/kv-always" --sync always --drain-delay 0s
if [[ -n ${KVSERVER_BENCH_BASE:-} ]]; then
  [[ -x $KVSERVER_BENCH_BASE ]] || { echo "KVSERVER_BENCH_BASE=$KVSERVER_BENCH_BASE is not an executable" >&2; exit 2; }
  NAMES+=(base-batch base-always)
  start base-batch 18607 env RUST_LOG=warn "$KVSERVER_BENCH_BASE" --bind 127.0.0.1 --port 18607 --ops-port 18608 \
    --data-dir "$WORK/base-batch" --sync batch --drain-delay 0s
  start base-always 18609 env RUST_LOG=warn "$KVSERVER_BENCH_BASE" --bind 127.0.0.1 --port 18609 --ops-port 18610 \
    --data-dir "$WORK/base-always" --sync always --drain-delay 0s
fi

declare -A RESULTS # "name op" -> lines of "<req/s> <p50 ms> <p99 ms> <errors>"
for round in $(seq 1 "$ROUNDS"); do
  for op in set get; do
    for name in "${NAMES[@]}"; do
      r=$(measure "${PORT[$name]}" "$op.lua")
      RESULTS["$name $op"]+="$r"$'\n'
      echo "round $round: $name $op: $r (req/s, p50 ms, p99 ms, errors)" >&2
    done
  done
done
stop_all

# median of the req/s column, and the latencies of that same run
median() { printf '%s' "${RESULTS[$1 $2]}" | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'; }
declare -A GET SET GETP SETP GET50 SET50 GETE SETE
for name in "${NAMES[@]}"; do
  read -r "GET[$name]" "GET50[$name]" "GETP[$name]" "GETE[$name]" < <(median "$name" get)
  read -r "SET[$name]" "SET50[$name]" "SETP[$name]" "SETE[$name]" < <(median "$name" set)
done

if [[ -n ${KVSERVER_BENCH_TSV:-} ]]; then
  {
    printf 'meta\twrk\t%s\n' "wrk ${WRK_ARGS[*]}, book routes, 1000 keys, 32-byte values, median of $ROUNDS interleaved rounds"
    for name in "${NAMES[@]}"; do
      printf 'get\t%s\t%s\t%s\t%s\t%s\n' "$name" "${GET[$name]}" "${GET50[$name]}" "${GETP[$name]}" "${GETE[$name]}"
      printf 'set\t%s\t%s\t%s\t%s\t%s\n' "$name" "${SET[$name]}" "${SET50[$name]}" "${SETP[$name]}" "${SETE[$name]}"
      printf 'rss\t%s\t%s\n' "$name" "${RSS[$name]}"
    done
  } >"$KVSERVER_BENCH_TSV"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", (b > 0) ? a / b : 0 }'; }
echo
echo "wrk ${WRK_ARGS[*]}, book routes, 1000 keys, 32-byte values, median of $ROUNDS interleaved rounds, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"
echo
echo "| server | GET req/s | GET p50/p99 ms | SET req/s | SET p50/p99 ms | GET vs Flask | SET vs Flask | GET vs in-memory | idle RSS KiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for name in "${NAMES[@]}"; do
  echo "| $name | ${GET[$name]} | ${GET50[$name]} / ${GETP[$name]} | ${SET[$name]} | ${SET50[$name]} / ${SETP[$name]} | $(ratio "${GET[$name]}" "${GET[flask]}") | $(ratio "${SET[$name]}" "${SET[flask]}") | $(ratio "${GET[$name]}" "${GET[inmem]}") | ${RSS[$name]} |"
done
