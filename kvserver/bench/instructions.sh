#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind, for kvserver and the
# baselines of kvserver/bench/run.sh under the same kind of load (50 connections, 1000 keys,
# 32-byte values): kvserver --sync batch, the bare axum server, redis-server (persistence off)
# and nginx (static files; GET only). Unlike req/s, the count hardly depends on what else the
# machine runs, so it shows what each server's own code costs a request. The kernel's share
# (system calls, TCP over loopback) is not counted: see CPU µs/req in kvserver/bench/run.sh.
# Usage: kvserver/bench/instructions.sh OUT.json [duration, default 3s]
#   Writes {"rows": [{"server", "op", "requests", "instructions_per_req"}...]}.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib/common.sh" bench || exit 1
OUT=${1:?usage: kvserver/bench/instructions.sh OUT.json [duration]}
DURATION=${2:-3s}
BENCH_DIR=kvserver/bench
KEYS=1000

for cmd in valgrind:valgrind wrk:wrk redis-server:redis-server redis-benchmark:redis-tools; do
  command -v "${cmd%%:*}" >/dev/null && continue
  echo "installing ${cmd#*:} (Debian package)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq "${cmd#*:}" >/dev/null
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --locked -q -p kvserver --bin kvserver --example inmem_baseline
BIN=$CARGO_TARGET_DIR/release
export RUST_LOG=warn # not through `env`: valgrind would count env, not the server it execs

WORK=$(mktemp -d)
PID=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { [[ -z $PID ]] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# under_callgrind NAME PROBE COMMAND...: starts COMMAND under callgrind (PID), waits for PROBE
under_callgrind() {
  local name=$1 probe=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.%p" "$@" >"$WORK/log-$name" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do eval "$probe" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$name did not come up under valgrind" >&2; return 1
}
# count NAME OP COMMAND...: zeroes the counters, runs the load COMMAND (which prints the
# requests it made), dumps, and adds a row
ROWS=$WORK/rows
count() {
  local name=$1 op=$2 n ir; shift 2
  callgrind_control -z "$PID" >/dev/null 2>&1
  n=$("$@")
  callgrind_control -d "$PID" >/dev/null 2>&1
  sleep 0.5
  ir=$(awk '/^(summary|totals):/ { s = $2 } END { print s + 0 }' "$(find "$WORK" -maxdepth 1 -name "$name.*" -printf "%T@ %p\n" | sort -n | tail -1 | cut -d" " -f2)")
  printf '%s\t%s\t%s\t%s\n' "$name" "$op" "$n" "$ir" >>"$ROWS"
  echo "$name $op: $n requests, $ir instructions" >&2
}
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=""; }
wrk_n() { # port script -> requests made
  wrk -t2 -c50 -d"$DURATION" -s "$BENCH_DIR/$2" "http://127.0.0.1:$1" | awk '/requests in/ { print $1 }'
}
redis_n() { # port op -> requests made
  redis-benchmark -h 127.0.0.1 -p "$1" -c 50 --threads 2 -d 32 -r "$KEYS" -n 20000 -t "$2" -q >/dev/null 2>&1
  echo 20000
}

http_server() { # name command... (with PORT set)
  local name=$1; shift
  under_callgrind "$name" "curl -sf http://127.0.0.1:$PORT/allKeys" "$@"
  wrk -t1 -c10 -d1s -s "$BENCH_DIR/set.lua" "http://127.0.0.1:$PORT" >/dev/null # the keys GET reads
  count "$name" get wrk_n "$PORT" get.lua
  count "$name" set wrk_n "$PORT" set.lua
  stop
}
PORT=$(free_port)
http_server kvserver-batch "$BIN/kvserver" --bind 127.0.0.1 --port "$PORT" \
  --ops-port "$(free_port)" --data-dir "$WORK/kv" --sync batch --drain-delay 0s
PORT=$(free_port)
http_server inmem "$BIN/examples/inmem_baseline" "$PORT"

PORT=$(free_port)
mkdir -p "$WORK/redis"
under_callgrind redis-none "redis-cli -p $PORT ping | grep -q PONG" redis-server --bind 127.0.0.1 \
  --port "$PORT" --dir "$WORK/redis" --save "" --appendonly no --daemonize no
redis_n "$PORT" set >/dev/null
count redis-none get redis_n "$PORT" get
count redis-none set redis_n "$PORT" set
stop

# nginx as in kvserver/bench/run.sh: one process, sendfile, open-file cache, no access log.
PORT=$(free_port)
NG=$WORK/nginx
mkdir -p "$NG/www/load" "$NG/tmp"
value=$(printf '%32s' "" | tr ' ' v)
for i in $(seq 0 $((KEYS - 1))); do printf '%s' "$value" >"$NG/www/load/key$i"; done
cat >"$NG/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
user $(id -un);
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 100000000;
  open_file_cache max=2000 inactive=60s; default_type "text/html; charset=utf-8";
  client_body_temp_path $NG/tmp/body; proxy_temp_path $NG/tmp/proxy; fastcgi_temp_path $NG/tmp/fastcgi;
  uwsgi_temp_path $NG/tmp/uwsgi; scgi_temp_path $NG/tmp/scgi;
  server { listen 127.0.0.1:$PORT; root $NG/www; }
}
EOF
under_callgrind nginx "curl -sf http://127.0.0.1:$PORT/load/key0" "$NGINX" -e "$NG/error.log" -p "$NG" -c "$NG/nginx.conf"
count nginx get wrk_n "$PORT" get.lua
stop

python3 - "$ROWS" "$OUT" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    name, op, n, ir = line.split("\t")
    n, ir = int(n or 0), int(ir)
    rows.append({"server": name, "op": op, "requests": n, "instructions_per_req": ir / n if n else None})
json.dump({"rows": rows}, open(sys.argv[2], "w"), indent=1)
PY
echo "wrote $OUT" >&2
