#!/usr/bin/env bash
# kvserver benchmark on loopback: GET and SET requests/s, p50 and p99, 1000 keys, 32-byte values,
# 50 connections, against what a user would pick instead:
#   (a) the chapter's Flask server (flask_server.py) on Flask's development server (wrk),
#   (b) a bare in-memory axum server (examples/inmem_baseline.rs) (wrk),
#   (c) redis-server from Debian under redis-benchmark -c50 --threads 2 -d32 -r1000: persistence
#       off (redis-none), `appendonly yes` + `appendfsync everysec` (redis-everysec, the
#       durability closest to --sync batch) and `appendfsync always` (redis-always, closest to
#       --sync always),
#   (d) nginx from Debian serving the same 1000 values as static files (GET only, wrk),
#   (e) kvserver with durable storage, --sync batch and --sync always (wrk).
# HTTP servers: wrk -t2 -c50 -d<duration> --latency over the book's routes (get.lua, set.lua).
# Every server is pinned to one CPU (SERVER_CPU, default 0) and the load generator to another
# (CLIENT_CPU, default 1) with taskset, so the client's own cost does not decide the ratio.
# Prints a markdown table with ratios and the floors of issue 16. Not a test: numbers depend on
# the machine.
# Usage: kvserver/bench/run.sh [duration, default 10s]   (ROUNDS=3 by default)
#   KVSERVER_BENCH_TSV=FILE also writes the medians there for tests/bench/run.sh, one row per
#   server and op: "op<TAB>server<TAB>req/s<TAB>p50 ms<TAB>p99 ms<TAB>errors<TAB>user µs/req<TAB>
#   sys µs/req" (the server process's CPU per request), plus one row per
#   server "rss<TAB>server<TAB>idle VmRSS KiB" read from /proc right after it came up, and
#   "meta<TAB>KEY<TAB>TEXT" rows describing the settings.
#   KVSERVER_BENCH_BASE=PATH adds another kvserver binary (e.g. an earlier commit's release build)
#   as base-batch and base-always, measured in the same interleaved rounds: a refactor's
#   before/after figures from one run.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib/common.sh" bench || exit 1
BENCH_DIR=kvserver/bench
DURATION=${1:-10s}
CONNS=50
KEYS=1000
VALUE_BYTES=32
WRK_ARGS=(-t2 -c"$CONNS" -d"$DURATION" --latency)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

# apt_install COMMAND PACKAGE...: the Debian packages, unless COMMAND is already there.
apt_install() {
  local cmd=$1; shift
  command -v "$cmd" >/dev/null && return 0
  echo "installing $* (Debian packages)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null
}
apt_install wrk wrk
apt_install redis-server redis-server redis-tools
apt_install redis-benchmark redis-tools
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || apt_install nginx nginx-light
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
VENV=$KVSTORE_CACHE/bench-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import flask' 2>/dev/null; then
  echo "installing flask into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q flask
fi
cargo build --release -q -p kvserver --bin kvserver --example inmem_baseline
BIN=$CARGO_TARGET_DIR/release

# Pinning needs two CPUs; on one, everything shares it (and the report says so).
if (($(nproc) >= 2)); then
  PIN_SERVER=(taskset -c "$SERVER_CPU")
  PIN_CLIENT=(taskset -c "$CLIENT_CPU")
  PINNING="servers pinned to CPU $SERVER_CPU, load generator to CPU $CLIENT_CPU (taskset)"
else
  PIN_SERVER=() PIN_CLIENT=() PINNING="one CPU: no pinning"
fi

WORK=$(mktemp -d)
trap 'cleanup' EXIT

# A port nobody listens on now (the kernel's pick; the server binds it right after).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_up() { # port kind
  for _ in $(seq 1 200); do
    case $2 in
      redis) redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG && return 0 ;;
      nginx) curl -sf "http://127.0.0.1:$1/load/key0" >/dev/null && return 0 ;;
      *) curl -sf "http://127.0.0.1:$1/allKeys" >/dev/null && return 0 ;;
    esac
    sleep 0.05
  done
  echo "server on port $1 did not come up" >&2; return 1
}

# wrk's summary -> "<req/s> <p50 ms> <p99 ms> <errors> <requests>" (errors: non-2xx answers +
# socket errors)
measure_wrk() { # port script
  "${PIN_CLIENT[@]}" wrk "${WRK_ARGS[@]}" -s "$BENCH_DIR/$2" "http://127.0.0.1:$1" | awk '
    function ms(v,   unit) { unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v)
                             return (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses/ { errors += $NF }
    /Socket errors/ { for (i = 3; i <= NF; i++) { v = $i; gsub(/,/, "", v); if (v ~ /^[0-9]+$/) errors += v } }
    /requests in/ { n = $1 }
    END { printf "%.0f %.2f %.2f %d %d\n", rps, p50, p99, errors, n }'
}

# redis-benchmark --csv -> the same "<req/s> <p50 ms> <p99 ms> <errors> <requests>". It counts requests,
# not seconds, so each run asks for the duration's worth at the rate the warm-up run saw.
SECONDS_PER_RUN=$(awk -v d="$DURATION" 'BEGIN { v = d; gsub(/[a-z]/, "", v); u = d; gsub(/[0-9.]/, "", u)
  print (u == "m") ? v * 60 : (u == "h") ? v * 3600 : v }')
declare -A REDIS_N
measure_redis() { # port op [requests]
  local n=${3:-${REDIS_N[$1 $2]}}
  "${PIN_CLIENT[@]}" redis-benchmark -h 127.0.0.1 -p "$1" -c "$CONNS" --threads 2 -d "$VALUE_BYTES" \
    -r "$KEYS" -n "$n" -t "$2" --csv 2>/dev/null | awk -F'"' -v n="$n" '
    NR > 1 && $2 != "" { rps = $4; p50 = $10; p99 = $14 }
    END { printf "%.0f %.2f %.2f 0 %d\n", rps, p50, p99, n }'
}

# The server's CPU per request: user and system microseconds of the whole process (every
# thread) over one measured run, from /proc/PID/stat.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
with_cpu() { # pid command... -> the command's line plus "<user µs/req> <sys µs/req>"
  local pid=$1 u0 s0 u1 s1 line; shift
  read -r u0 s0 < <(cpu_ticks "$pid")
  line=$("$@")
  read -r u1 s1 < <(cpu_ticks "$pid")
  awk -v l="$line" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$CLK_TCK" 'BEGIN {
    split(l, f, " "); n = (f[5] > 0) ? f[5] : 1
    printf "%s %.2f %.2f\n", l, u * 1e6 / hz / n, s * 1e6 / hz / n }'
}

# Every server runs at once; rounds alternate between them and each figure is the median of
# ROUNDS runs, so background load on the machine hits every server alike.
ROUNDS=${ROUNDS:-3}
declare -A PORT PIDS RSS KIND
start() { # name kind command... (the command's port is ${PORT[name]}, set by the caller)
  local name=$1 kind=$2; shift 2
  "${PIN_SERVER[@]}" "$@" >"$WORK/$name.log" 2>&1 & PIDS[$name]=$!
  KIND[$name]=$kind
  wait_up "${PORT[$name]}" "$kind"
  # Idle footprint: resident set right after the first answer (`taskset` and `env` exec, so the
  # PID is the server's).
  RSS[$name]=$(awk '/^VmRSS:/ { print $2 }' "/proc/${PIDS[$name]}/status")
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
cleanup() { stop_all; rm -rf "$WORK"; }

kvserver_start() { # name binary sync
  PORT[$1]=$(free_port)
  start "$1" http env RUST_LOG=warn "$2" --bind 127.0.0.1 --port "${PORT[$1]}" --ops-port "$(free_port)" \
    --data-dir "$WORK/$1" --sync "$3" --drain-delay 0s
}
redis_start() { # name redis-server options...
  local name=$1; shift
  PORT[$name]=$(free_port)
  mkdir -p "$WORK/$name"
  start "$name" redis redis-server --bind 127.0.0.1 --port "${PORT[$name]}" --dir "$WORK/$name" \
    --save "" --daemonize no --protected-mode no --logfile "" "$@"
}
nginx_start() { # name: the values SET writes, as static files under /load/
  local name=$1 root=$WORK/$1
  PORT[$name]=$(free_port)
  mkdir -p "$root/www/load" "$root/tmp"
  local value; value=$(printf "%${VALUE_BYTES}s" "" | tr ' ' v)
  for i in $(seq 0 $((KEYS - 1))); do printf '%s' "$value" >"$root/www/load/key$i"; done
  # The usual static-file setup: one process (one CPU; no master, so its PID is the one serving),
  # sendfile, no access log, open-file cache;
  # keep-alive unbounded like kvserver's (nginx closes a connection after 1000 by default).
  cat >"$root/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
user $(id -un);
pid $root/nginx.pid;
error_log $root/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000000;
  open_file_cache max=2000 inactive=60s;
  default_type "text/html; charset=utf-8";
  client_body_temp_path $root/tmp/body;
  proxy_temp_path $root/tmp/proxy;
  fastcgi_temp_path $root/tmp/fastcgi;
  uwsgi_temp_path $root/tmp/uwsgi;
  scgi_temp_path $root/tmp/scgi;
  server { listen 127.0.0.1:${PORT[$name]}; root $root/www; }
}
EOF
  start "$name" nginx "$NGINX" -e "$root/error.log" -p "$root" -c "$root/nginx.conf"
}

NAMES=(flask inmem nginx redis-none redis-everysec redis-always kvserver-batch kvserver-always)
mkdir -p "$WORK/flask"
PORT[flask]=$(free_port)
start flask http env DATA_DIR="$WORK/flask" "$VENV/bin/python" "$BENCH_DIR/flask_server.py" "${PORT[flask]}"
PORT[inmem]=$(free_port)
start inmem http "$BIN/examples/inmem_baseline" "${PORT[inmem]}"
nginx_start nginx
redis_start redis-none --appendonly no
redis_start redis-everysec --appendonly yes --appendfsync everysec
redis_start redis-always --appendonly yes --appendfsync always
kvserver_start kvserver-batch "$BIN/kvserver" batch
kvserver_start kvserver-always "$BIN/kvserver" always
if [[ -n ${KVSERVER_BENCH_BASE:-} ]]; then
  [[ -x $KVSERVER_BENCH_BASE ]] || { echo "KVSERVER_BENCH_BASE=$KVSERVER_BENCH_BASE is not an executable" >&2; exit 2; }
  NAMES+=(base-batch base-always)
  kvserver_start base-batch "$KVSERVER_BENCH_BASE" batch
  kvserver_start base-always "$KVSERVER_BENCH_BASE" always
fi

# redis-benchmark's warm-up: writes the keys GET reads, and sizes the measured runs.
for name in "${NAMES[@]}"; do
  [[ ${KIND[$name]} == redis ]] || continue
  for op in set get; do
    read -r rps _ < <(measure_redis "${PORT[$name]}" "$op" 20000)
    REDIS_N["${PORT[$name]} $op"]=$(awk -v r="$rps" -v s="$SECONDS_PER_RUN" 'BEGIN { n = r * s; printf "%d", (n < 20000) ? 20000 : n }')
    echo "warm-up: $name $op: $rps req/s, measuring ${REDIS_N[${PORT[$name]} $op]} requests a run" >&2
  done
done

declare -A RESULTS # "name op" -> lines of "<req/s> <p50 ms> <p99 ms> <errors> <requests> <user µs/req> <sys µs/req>"
for round in $(seq 1 "$ROUNDS"); do
  for op in set get; do
    for name in "${NAMES[@]}"; do
      case ${KIND[$name]} in
        redis) r=$(with_cpu "${PIDS[$name]}" measure_redis "${PORT[$name]}" "$op") ;;
        nginx) [[ $op == get ]] || continue; r=$(with_cpu "${PIDS[$name]}" measure_wrk "${PORT[$name]}" get.lua) ;;
        *) r=$(with_cpu "${PIDS[$name]}" measure_wrk "${PORT[$name]}" "$op.lua") ;;
      esac
      RESULTS["$name $op"]+="$r"$'\n'
      echo "round $round: $name $op: $r (req/s, p50 ms, p99 ms, errors, requests, server user/sys CPU µs per request)" >&2
    done
  done
done
stop_all

# median of the req/s column, and the latencies of that same run
median() { printf '%s' "${RESULTS[$1 $2]:-}" | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'; }
# and the CPU figures: the median of each column on its own.
median_col() { printf '%s' "${RESULTS[$1 $2]:-}" | awk -v c="$3" '{ print $c }' | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'; }
declare -A GET SET GETP SETP GET50 SET50 GETE SETE GETU GETS SETU SETS
for name in "${NAMES[@]}"; do
  read -r "GET[$name]" "GET50[$name]" "GETP[$name]" "GETE[$name]" _ < <(median "$name" get)
  GETU[$name]=$(median_col "$name" get 6) GETS[$name]=$(median_col "$name" get 7)
  [[ -n ${RESULTS[$name set]:-} ]] || continue
  read -r "SET[$name]" "SET50[$name]" "SETP[$name]" "SETE[$name]" _ < <(median "$name" set)
  SETU[$name]=$(median_col "$name" set 6) SETS[$name]=$(median_col "$name" set 7)
done

SETTINGS="$CONNS connections, $KEYS keys, $VALUE_BYTES-byte values, median of $ROUNDS interleaved rounds of $DURATION, $PINNING"
if [[ -n ${KVSERVER_BENCH_TSV:-} ]]; then
  {
    printf 'meta\twrk\t%s\n' "wrk ${WRK_ARGS[*]}, book routes, $KEYS keys, $VALUE_BYTES-byte values, median of $ROUNDS interleaved rounds"
    printf 'meta\tredis\t%s\n' "redis-benchmark -c $CONNS --threads 2 -d $VALUE_BYTES -r $KEYS -t set|get, as many requests as the warm-up rate fills $DURATION with (redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'))"
    printf 'meta\tnginx\t%s\n' "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), one process, sendfile, open-file cache, no access log, the $KEYS values as files under /load/"
    printf 'meta\tpinning\t%s\n' "$PINNING"
    printf 'meta\tloadavg\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    for name in "${NAMES[@]}"; do
      printf 'get\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${GET[$name]}" "${GET50[$name]}" "${GETP[$name]}" "${GETE[$name]}" "${GETU[$name]}" "${GETS[$name]}"
      [[ -z ${SET[$name]:-} ]] || printf 'set\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${SET[$name]}" "${SET50[$name]}" "${SETP[$name]}" "${SETE[$name]}" "${SETU[$name]}" "${SETS[$name]}"
      printf 'rss\t%s\t%s\n' "$name" "${RSS[$name]}"
    done
  } >"$KVSERVER_BENCH_TSV"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", (b > 0) ? a / b : 0 }'; }
verdict() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { print (b > 0 && a / b >= f) ? "met" : "missed" }'; }
echo
echo "$SETTINGS; HTTP: wrk ${WRK_ARGS[*]}; redis: redis-benchmark -c$CONNS --threads 2 -d$VALUE_BYTES -r$KEYS; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"
echo
echo "| server | GET req/s | GET p50/p99 ms | GET CPU µs/req user+sys | SET req/s | SET p50/p99 ms | SET CPU µs/req user+sys | GET vs Flask | SET vs Flask | GET vs in-memory | idle RSS KiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for name in "${NAMES[@]}"; do
  echo "| $name | ${GET[$name]} | ${GET50[$name]} / ${GETP[$name]} | ${GETU[$name]}+${GETS[$name]} | ${SET[$name]:-—} | ${SET50[$name]:-—} / ${SETP[$name]:-—} | ${SETU[$name]:-—}+${SETS[$name]:-—} | $(ratio "${GET[$name]}" "${GET[flask]}") | $(ratio "${SET[$name]:-0}" "${SET[flask]}") | $(ratio "${GET[$name]}" "${GET[inmem]}") | ${RSS[$name]} |"
done
echo
echo "| floor (issue 16) | kvserver req/s | baseline req/s | ratio | floor | verdict |"
echo "|---|---:|---:|---:|---:|---|"
floor() { # label ours base floor
  echo "| $1 | $2 | $3 | $(ratio "$2" "$3") | ≥ $4× | $(verdict "$2" "$3" "$4") |"
}
floor "GET (--sync batch) vs redis (no persistence)" "${GET[kvserver-batch]}" "${GET[redis-none]}" 0.9
floor "GET (--sync batch) vs nginx static file" "${GET[kvserver-batch]}" "${GET[nginx]}" 1.0
floor "SET --sync batch vs redis appendfsync everysec" "${SET[kvserver-batch]}" "${SET[redis-everysec]}" 0.9
floor "SET --sync always vs redis appendfsync always" "${SET[kvserver-always]}" "${SET[redis-always]}" 1.0
