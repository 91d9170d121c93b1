#!/usr/bin/env bash
# The local static PVs' recycler (daemon pv-recycler, started by up.sh when KVSTORE_NODES > 1),
# as sig-storage-local-static-provisioner does it: a Released PV of ours (label
# kvstore.dev/local-pv) has its directory emptied and its claimRef removed, so it is Available
# again for the next claim on that node. Runs until killed (down.sh stops it by its pid file).
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

while sleep 2; do
  while read -r pv dir; do
    [[ -n $pv && $dir == "$NODES_DIR"/n*/volumes/pv* && -d $dir ]] || continue
    log "recycling $pv ($dir)"
    find "$dir" -mindepth 1 -delete 2>/dev/null || { log "could not empty $dir"; continue; }
    kubectl_admin patch pv "$pv" --type json -p '[{"op": "remove", "path": "/spec/claimRef"}]' >/dev/null ||
      log "could not make $pv Available"
  done < <(kubectl_admin get pv -l kvstore.dev/local-pv=true \
    -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name} {.spec.local.path}{"\n"}{end}' 2>/dev/null)
done
