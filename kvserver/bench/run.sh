#!/usr/bin/env bash
# kvserver benchmark: GET and SET requests/s and p99 (wrk -t2 -c50 -d10s, the book's routes,
# 1000 keys, 32-byte values) against
#   (a) the chapter's Flask server (flask_server.py) on Flask's development server,
#   (b) a bare in-memory axum server (examples/inmem_baseline.rs),
#   (c) kvserver with durable storage, --sync batch and --sync always.
# Prints a markdown table with ratios. Not a test: numbers depend on the machine.
# Usage: kvserver/bench/run.sh [duration, default 10s]
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
PID=
cleanup() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT

wait_up() { # port
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$1/allKeys" >/dev/null && return 0
    sleep 0.05
  done
  echo "server on port $1 did not come up" >&2; return 1
}

stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }

# wrk's summary -> "<req/s> <p99 in ms>"
measure() { # port script
  wrk "${WRK_ARGS[@]}" -s "$BENCH_DIR/$2" "http://127.0.0.1:$1" | awk '
    /Requests\/sec/ { rps = $2 }
    $1 == "99%" { v = $2; unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v);
                  ms = (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v }
    END { printf "%.0f %.2f\n", rps, ms }'
}

declare -A GET SET GETP SETP
run() { # name port
  read -r SET[$1] SETP[$1] < <(measure "$2" set.lua)
  read -r GET[$1] GETP[$1] < <(measure "$2" get.lua)
  echo "$1: GET ${GET[$1]}/s p99 ${GETP[$1]} ms, SET ${SET[$1]}/s p99 ${SETP[$1]} ms" >&2
  stop
}

mkdir -p "$WORK/flask"
DATA_DIR=$WORK/flask "$VENV/bin/python" "$BENCH_DIR/flask_server.py" 18601 >/dev/null 2>&1 & PID=$!
wait_up 18601; run flask 18601

"$BIN/examples/inmem_baseline" 18602 & PID=$!
wait_up 18602; run inmem 18602

for sync in batch always; do
  RUST_LOG=warn "$BIN/kvserver" --bind 127.0.0.1 --port 18603 --ops-port 18604 \
    --data-dir "$WORK/kv-$sync" --sync "$sync" --drain-delay 0s >/dev/null & PID=$!
  wait_up 18603; run "kvserver-$sync" 18603
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f×", (b > 0) ? a / b : 0 }'; }
echo
echo "wrk ${WRK_ARGS[*]}, book routes, 1000 keys, 32-byte values, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| server | GET req/s | GET p99 ms | SET req/s | SET p99 ms | GET vs Flask | SET vs Flask | GET vs in-memory |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for name in flask inmem kvserver-batch kvserver-always; do
  echo "| $name | ${GET[$name]} | ${GETP[$name]} | ${SET[$name]} | ${SETP[$name]} | $(ratio "${GET[$name]}" "${GET[flask]}") | $(ratio "${SET[$name]}" "${SET[flask]}") | $(ratio "${GET[$name]}" "${GET[inmem]}") |"
done
