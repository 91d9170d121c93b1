#!/usr/bin/env bash
# `make faults`: fault injection on the local cluster (see docs/faults.md). The steps of
# tests/e2e/run.sh (cluster up, smoke test, images, the operator from its Helm chart, tear-down
# unless KEEP_CLUSTER=1), running the faults, replication and replication_faults suites, then each
# case's summary line.
#
# usage: tests/faults/run.sh [CARGO_TEST_FILTER...]     e.g. tests/faults/run.sh disk_full
#   KEEP_CLUSTER=1   leave the local cluster running afterwards
# Needs root on the cluster's node: the cases kill host processes and mount tmpfs volumes.
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" faults || exit 1
STATE="${KVSTORE_STATE:-/var/lib/kvstore-cluster}"

[[ $(id -u) == 0 ]] || { log "needs root: the cases kill processes and mount tmpfs on the node"; exit 1; }
[[ ${KVSTORE_CLUSTER:-local} == local ]] || { log "only on the local cluster (host processes, tmpfs volumes)"; exit 1; }

mkdir -p "$KVSTORE_CACHE/faults"
FAULTS_SUMMARY="$KVSTORE_CACHE/faults/summary-$(date -u +%Y%m%dT%H%M%SZ).txt"
export FAULTS_SUMMARY
: >"$FAULTS_SUMMARY"

start=$SECONDS
rc=0
E2E_SUITES="faults replication replication_faults" tests/e2e/run.sh --nocapture "$@" || rc=$?

# The tests unmount their own tmpfs volumes (also when they fail); this catches a killed run.
while read -r target; do
  log "unmounting leftover $target"
  umount -l "$target" || log "could not unmount $target"
done < <(findmnt -rn -o TARGET | grep "^$STATE/faults/" || true)

log "summary ($FAULTS_SUMMARY):"
cat "$FAULTS_SUMMARY" >&2
log "$(grep -c -E '^(FAULTS|REPLICATION) ' "$FAULTS_SUMMARY" || true) case(s) passed with no acknowledged write lost; exit $rc; wall time $((SECONDS - start))s"
exit $rc
