#!/usr/bin/env bash
# The fault figures of the replication benchmark (docs/replication.md section 11), each on the
# factor-FACTOR store STORE (SHARDS shards, Available, copies in sync), as root on the cluster's
# node. Part of tests/bench/replication.sh.
#   failover  KILLS x kill -9 of a shard leader; kill -> first acknowledged write on that shard
#             (tests/bench/repl_failover.py)
#   catchup   one follower of shard SHARD cut off (iptables in its netns), CATCHUP_KEYS x SHARDS
#             keys of 64 bytes written through the store (so its shard gets about CATCHUP_KEYS of
#             them, all missed by the follower), healed; heal -> follower in sync
#             (tests/bench/repl_catchup.py)
#   rebuild   on the same shard (holding the catch-up's keys), a follower's PVC and pod deleted;
#             deletion -> new copy in sync, keys/s (tests/bench/repl_rebuild.py)
#
# usage: tests/bench/repl_faults.sh NS STORE failover|catchup|rebuild OUT_JSON
#   BENCH_REPL_KILLS (10), BENCH_REPL_CATCHUP_KEYS (1000000), BENCH_REPL_SHARD (0),
#   BENCH_REPL_SHARDS (3), BENCH_REPL_FACTOR (3), BENCH_REPL_CONCURRENCY (64),
#   BENCH_REPL_LIMIT_S (7200: the longest any one wait may take)
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" bench || exit 1
# shellcheck source=tests/bench/cluster_lib.sh
source tests/bench/cluster_lib.sh
usage="usage: repl_faults.sh NS STORE failover|catchup|rebuild OUT_JSON"
NS=${1:?$usage} STORE=${2:?$usage} PART=${3:?$usage} OUT=${4:?$usage}
SHARDS=${BENCH_REPL_SHARDS:-3}
FACTOR=${BENCH_REPL_FACTOR:-3}
SHARD=${BENCH_REPL_SHARD:-0}
LIMIT=${BENCH_REPL_LIMIT_S:-7200}
cluster_env "benchmark on"
WORK=$(mktemp -d)
probe=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  # SIGTERM ends the probe through its finally clauses: the cut is healed.
  if [[ -n $probe ]]; then kill -TERM "$probe" 2>/dev/null || true; wait "$probe" 2>/dev/null || true; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

case $PART in
  failover)
    python3 tests/bench/repl_probe.py failover "$NS" "$STORE" "$SHARDS" "$FACTOR" "${BENCH_REPL_KILLS:-10}" >"$OUT"
    ;;
  catchup)
    keys=$(( ${BENCH_REPL_CATCHUP_KEYS:-1000000} * SHARDS ))
    python3 tests/bench/repl_probe.py catchup "$NS" "$STORE" "$SHARDS" "$FACTOR" "$SHARD" \
      "$WORK/ready" "$WORK/stop" "$LIMIT" >"$WORK/catchup.json" &
    probe=$!
    while [[ ! -f $WORK/ready ]]; do
      kill -0 "$probe" 2>/dev/null || { wait "$probe"; probe=""; log "the catch-up probe ended before cutting the follower"; exit 1; }
      sleep 0.5
    done
    log "catch-up: $(cat "$WORK/ready") cut off; writing $keys keys (64 B) through $STORE"
    started=$SECONDS writer_rc=0
    bench_client_json "$NS" catchup-writer "$LIMIT" load --kvstore "$STORE" --keys "$keys" \
      --prefix catchup- --prefill --write-ratio 0 --value-bytes 64 \
      --concurrency "${BENCH_REPL_CONCURRENCY:-64}" --duration 1 --json >"$WORK/writer.json" || writer_rc=$?
    write_s=$((SECONDS - started))
    touch "$WORK/stop"
    probe_rc=0
    wait "$probe" || probe_rc=$?
    probe=""
    if ((writer_rc != 0 || probe_rc != 0)); then
      log "catch-up failed: writer exit $writer_rc, probe exit $probe_rc"
      exit 1
    fi
    on_shard=$(python3 tests/bench/repl_probe.py shard-keys catchup- "$keys" "$SHARD" "$SHARDS" | jq .keys)
    jq --argjson keys "$keys" --argjson on_shard "$on_shard" --argjson write_s "$write_s" \
      --slurpfile w "$WORK/writer.json" \
      '. + {keys_written: $keys, keys_on_shard: $on_shard, write_and_read_back_s: $write_s,
            writer: {errors: $w[0].errors, lost: $w[0].verify.lost, wrong: $w[0].verify.wrong,
                     keys_checked: $w[0].verify.keys_checked}}' "$WORK/catchup.json" >"$OUT"
    kubectl -n "$NS" delete pod catchup-writer --wait=false >/dev/null
    ;;
  rebuild)
    python3 tests/bench/repl_probe.py rebuild "$NS" "$STORE" "$SHARDS" "$FACTOR" "$SHARD" "$LIMIT" >"$OUT"
    ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac
log "$PART: $(jq -c 'del(.rounds)' "$OUT")"
