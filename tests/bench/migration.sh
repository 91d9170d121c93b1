#!/usr/bin/env bash
# Migration benchmark: keys/s of the operator's copy engine (operator/examples/migrate_bench.rs:
# bulk export of the moving keys, batched if-absent imports) against the book's rebalance (one
# HTTP request per key), in one run, on local kvserver processes. Prints a markdown table.
# Not a test: the figures depend on the machine.
# Usage: tests/bench/migration.sh [keys, default 100000]
#   FROM/TO (default 3/4), SHARDING (modulo|jump), BASELINE_KEYS (default: all moving keys),
#   BOOK_KEYS (keys the Python book client copies, default 10000: its rate is per key),
#   PROFILE=release to build the bench client optimised (the kvserver is always release).
#   KVSERVER_BIN / MIGRATE_BENCH_BIN: use these binaries instead of building them (e.g. an
#   earlier commit's, to compare two builds run after run).
#   MIGRATION_BENCH_JSON=FILE also writes the figures there for tests/bench/run.sh: the rows of
#   whatever table the bench client prints (parsed, not recomputed) and the book script's row.
#   VALUE_BYTES (default 64) and VALUE_BYTES_MAX: value sizes spread from VALUE_BYTES to
#   VALUE_BYTES_MAX. BASELINE_KEYS=0 skips both one-request-per-key baselines (no book servers).
#   The run ends with the copy engine's peak RSS (the bench prints it) and every kvserver's.
# Memory run (issue 13 item 10: ~1 GiB of values from 1 KiB to 1 MiB):
#   PROFILE=release VALUE_BYTES=1024 VALUE_BYTES_MAX=1048576 BASELINE_KEYS=0 \
#     tests/bench/migration.sh 7100
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
KEYS=${1:-100000}
FROM=${FROM:-3}
TO=${TO:-4}
SPAN=$(( FROM > TO ? FROM : TO ))
PROFILE=${PROFILE:-dev}

if [[ -n ${KVSERVER_BIN:-} ]]; then
  KVSERVER=$KVSERVER_BIN
else
  cargo build --release -q -p kvserver --bin kvserver
  KVSERVER=$CARGO_TARGET_DIR/release/kvserver
fi
if [[ -n ${MIGRATE_BENCH_BIN:-} ]]; then
  BENCH=$MIGRATE_BENCH_BIN
elif [ "$PROFILE" = release ]; then
  cargo build --release -q -p operator --example migrate_bench
  BENCH=$CARGO_TARGET_DIR/release/examples/migrate_bench
else
  cargo build -q -p operator --example migrate_bench
  BENCH=$CARGO_TARGET_DIR/debug/examples/migrate_bench
fi
[ -x "$KVSERVER" ] || { echo "missing $KVSERVER" >&2; exit 1; }
[ -x "$BENCH" ] || { echo "missing $BENCH" >&2; exit 1; }

WORK=$(mktemp -d)
# start() runs in a command substitution (a subshell), so server pids go to a file, not a variable.
cleanup() {
  local pids=()
  [ -f "$WORK/pids" ] && mapfile -t pids <"$WORK/pids"
  if ((${#pids[@]})); then
    kill "${pids[@]}" 2>/dev/null || true
    # Not our children (their subshell is gone): poll until every one has exited.
    for _ in $(seq 1 100); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
head -c 24 /dev/urandom | base64 > "$WORK/token"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start <set> <ordinal>: one kvserver with its own data dir; prints its URL.
start() {
  local port ops
  port=$(free_port); ops=$(free_port)
  mkdir -p "$WORK/$1-$2"
  "$KVSERVER" --bind 127.0.0.1 --port "$port" --ops-port "$ops" --data-dir "$WORK/$1-$2" \
    --admin-token-file "$WORK/token" --shard "$2" --drain-delay 0s \
    >"$WORK/$1-$2.log" 2>&1 &
  echo $! >>"$WORK/pids"
  echo "$1-$2 $!" >>"$WORK/names"
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    curl -sf "http://127.0.0.1:$ops/readyz" >/dev/null 2>&1 && break
    sleep 0.05
  done
  echo "http://127.0.0.1:$port"
}

BASELINE_KEYS=${BASELINE_KEYS:-$KEYS}
ENGINE=(); BOOK=()
for i in $(seq 0 $((SPAN - 1))); do
  ENGINE+=("$(start engine "$i")")
  if [ "$BASELINE_KEYS" != 0 ]; then BOOK+=("$(start book "$i")"); fi
done
join() { local IFS=,; echo "$*"; }

if ((${#BOOK[@]})); then export BENCH_BASELINE_SERVERS; BENCH_BASELINE_SERVERS=$(join "${BOOK[@]}"); fi
if [[ -n ${VALUE_BYTES_MAX:-} ]]; then export BENCH_VALUE_BYTES_MAX=$VALUE_BYTES_MAX; fi
export BENCH_SERVER_PIDS
BENCH_SERVER_PIDS=$(awk '/^engine-/ { printf "%s%s", sep, $2; sep = "," }' "$WORK/names")
BENCH_SERVERS=$(join "${ENGINE[@]}") BENCH_VALUE_BYTES=${VALUE_BYTES:-64} \
BENCH_RESULT=$WORK/engine-rate BENCH_TOKEN_FILE=$WORK/token BENCH_FROM=$FROM BENCH_TO=$TO BENCH_KEYS=$KEYS \
BENCH_SHARDING=${SHARDING:-modulo} BENCH_BATCH=${BATCH:-1000} BENCH_BASELINE_KEYS=$BASELINE_KEYS \
  "$BENCH" | tee "$WORK/engine.out"
# The book's own client: Python urllib, a new connection per request (modulo only).
copied="" secs=""
if [ "${SHARDING:-modulo}" = modulo ] && [ "$BASELINE_KEYS" != 0 ]; then
  read -r copied secs < <(python3 tests/bench/migration_book.py "$FROM" "$TO" \
    "${BOOK_KEYS:-10000}" "${BOOK[@]}")
  awk -v c="$copied" -v s="$secs" -v e="$(cat "$WORK/engine-rate")" 'BEGIN {
    r = c / s
    printf "\n| the book rebalance script (Python urllib, one request per key) | %d | %.2f s | %.0f | 1× |\n", c, s, r
    printf "| operator copy engine (same run as above) | | | %.0f | %.0f× |\n", e, e / r }'
fi
echo
# Peak RSS of every kvserver over its whole life (load and move).
while read -r name pid; do
  hwm=$(awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || echo "?")
  echo "kvserver $name: peak RSS ${hwm} MiB"
done <"$WORK/names"
echo "kvserver: release build; bench client: $PROFILE build; $(nproc) CPUs."
if [[ -n ${MIGRATION_BENCH_JSON:-} ]]; then
  python3 tests/bench/parse_migration.py "$WORK/engine.out" "$FROM" "$TO" "$KEYS" "$PROFILE" \
    "${SHARDING:-modulo}" "$copied" "$secs" >"$MIGRATION_BENCH_JSON"
fi
