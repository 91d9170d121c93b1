#!/usr/bin/env bash
# kvserver benchmark: GET and SET requests/s and p99 (wrk -t2 -c50 -d10s, the book's routes,
# 1000 keys, 32-byte values) against
#   (a) the chapter's Flask server (flask_server.py) on Flask's development server,
#   (b) a bare in-memory axum server (examples/inmem_baseline.rs),
#   (c) kvserver with durable storage, --sync batch and --sync always.
# Prints a markdown table with ratios. Not a test: numbers depend on the machine.
# Usage: kvserver/bench/run.sh [duration, default 10s]   (ROUNDS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH_DIR=kvserver/bench
DURATION=${1:-10s}
CACHE=${KVSTORE_CACHE:-$HOME/.cache/kvstore-operator}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/cargo-target}
WRK_ARGS=(-t2 -c50 -d"$DURATION" --latency)

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
VENV=$CACHE/bench-venv
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

# wrk's summary -> "<req/s> <p99 in ms>"
measure() { # port script
  wrk "${WRK_ARGS[@]}" -s "$BENCH_DIR/$2" "http://127.0.0.1:$1" | awk '
    /Requests\/sec/ { rps = $2 }
    $1 == "99%" { v = $2; unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v);
                  ms = (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v }
    END { printf "%.0f %.2f\n", rps, ms }'
}

# Every server runs at once; rounds alternate between them and each figure is the median of
# ROUNDS runs, so background load on the machine hits every server alike.
ROUNDS=${ROUNDS:-3}
declare -A PORT PIDS
start() { # name port command...
  local name=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 & PIDS[$name]=$!
  PORT[$name]=$port
  wait_up "$port"
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

declare -A RESULTS # "name op" -> lines of "<req/s> <p99 ms>"
for round in $(seq 1 "$ROUNDS"); do
  for op in set get; do
    for name in "${NAMES[@]}"; do
      r=$(measure "${PORT[$name]}" "$op.lua")
      RESULTS["$name $op"]+="$r"$'\n'
      echo "round $round: $name $op: $r (req/s, p99 ms)" >&2
    done
  done
done
stop_all

# median of the req/s column, and the p99 of that same run
median() { printf '%s' "${RESULTS[$1 $2]}" | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'; }
declare -A GET SET GETP SETP
for name in "${NAMES[@]}"; do
  read -r GET[$name] GETP[$name] < <(median "$name" get)
  read -r SET[$name] SETP[$name] < <(median "$name" set)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", (b > 0) ? a / b : 0 }'; }
echo
echo "wrk ${WRK_ARGS[*]}, book routes, 1000 keys, 32-byte values, median of $ROUNDS interleaved rounds, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"
echo
echo "| server | GET req/s | GET p99 ms | SET req/s | SET p99 ms | GET vs Flask | SET vs Flask | GET vs in-memory |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for name in "${NAMES[@]}"; do
  echo "| $name | ${GET[$name]} | ${GETP[$name]} | ${SET[$name]} | ${SETP[$name]} | $(ratio "${GET[$name]}" "${GET[flask]}") | $(ratio "${SET[$name]}" "${SET[flask]}") | $(ratio "${GET[$name]}" "${GET[inmem]}") |"
done
