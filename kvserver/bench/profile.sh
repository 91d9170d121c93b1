#!/usr/bin/env bash
# Where kvserver's time goes under the benchmark's loads: `perf record` (flat, every thread,
# kernel included) of a release kvserver with symbols while wrk runs the GET and SET loads of
# kvserver/bench/run.sh (same settings and pinning: server on CPU SERVER_CPU, wrk on CLIENT_CPU),
# sorted into layers by kvserver/bench/profile.py; plus the system calls per request
# (`perf stat -e raw_syscalls:sys_enter`).
# Usage: kvserver/bench/profile.sh OUT.json [duration, default 5s]
#   Writes {"loads": [{label, layers, top, syscalls_per_req, requests}...]}; exits 0 without
#   writing when perf cannot record here (no perf, or perf_event_paranoid forbids it).
# The binary is built with CARGO_PROFILE_RELEASE_STRIP=none (the release profile strips symbols)
# and copied aside; the next ordinary release build relinks the stripped one.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib/common.sh" bench || exit 1
OUT=${1:?usage: kvserver/bench/profile.sh OUT.json [duration]}
DURATION=${2:-5s}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BENCH_DIR=kvserver/bench

command -v perf >/dev/null || { echo "no perf: no profile" >&2; exit 0; }
command -v wrk >/dev/null || { echo "no wrk (kvserver/bench/run.sh installs it): no profile" >&2; exit 0; }
WORK=$(mktemp -d)
PIDS=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
if ! perf record -o "$WORK/probe.data" -- true >/dev/null 2>&1; then
  echo "perf cannot record here (perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null)): no profile" >&2
  exit 0
fi

CARGO_PROFILE_RELEASE_STRIP=none cargo build --release --locked -q -p kvserver --bin kvserver
cp "$CARGO_TARGET_DIR/release/kvserver" "$WORK/kvserver"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start() { # sync -> sets PORT and PID
  PORT=$(free_port)
  taskset -c "$SERVER_CPU" env RUST_LOG=warn "$WORK/kvserver" --bind 127.0.0.1 --port "$PORT" \
    --ops-port "$(free_port)" --data-dir "$WORK/data-$1" --sync "$1" --drain-delay 0s >/dev/null 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/allKeys" >/dev/null && return 0; sleep 0.05; done
  echo "kvserver did not come up" >&2; exit 1
}
load() { # script -> wrk's "requests in" count
  taskset -c "$CLIENT_CPU" wrk -t2 -c50 -d"$DURATION" -s "$BENCH_DIR/$1" "http://127.0.0.1:$PORT" |
    awk '/requests in/ { print $1 }'
}
profile() { # label script
  local label=$1 script=$2 n
  perf record -q -F 999 -o "$WORK/$label.data" -p "$PID" >/dev/null 2>&1 & local rec=$!
  n=$(load "$script")
  kill -INT "$rec"; wait "$rec" 2>/dev/null || true
  perf report -i "$WORK/$label.data" --no-children --sort dso,sym -g none --stdio 2>/dev/null |
    python3 "$BENCH_DIR/profile.py" "$label" >"$WORK/$label.json"
  # System calls per request, in a second run of the same load.
  perf stat -x, -e raw_syscalls:sys_enter -p "$PID" -o "$WORK/$label.stat" >/dev/null 2>&1 & local st=$!
  local n2; n2=$(load "$script")
  kill -INT "$st"; wait "$st" 2>/dev/null || true
  python3 - "$WORK/$label.json" "$WORK/$label.stat" "$n" "$n2" <<'PY'
import json, sys
prof = json.load(open(sys.argv[1]))
calls = next((float(l.split(",")[0]) for l in open(sys.argv[2])
              if "raw_syscalls" in l and l.split(",")[0].replace(".", "").isdigit()), None)
prof["requests"] = int(sys.argv[3])
prof["syscalls_per_req"] = calls / int(sys.argv[4]) if calls and int(sys.argv[4]) else None
json.dump(prof, open(sys.argv[1], "w"))
PY
  echo "profiled $label: $n requests" >&2
}

start batch
load set.lua >/dev/null # the keys GET reads
profile "GET (--sync batch)" get.lua
profile "SET --sync batch" set.lua
start always
profile "SET --sync always" set.lua
python3 - "$OUT" "$WORK"/*.json <<'PY'
import json, sys
order = ["GET (--sync batch)", "SET --sync batch", "SET --sync always"]
loads = [json.load(open(p)) for p in sys.argv[2:]]
loads.sort(key=lambda l: order.index(l["label"]) if l["label"] in order else 9)
json.dump({"loads": loads}, open(sys.argv[1], "w"), indent=1)
PY
echo "wrote $OUT" >&2
