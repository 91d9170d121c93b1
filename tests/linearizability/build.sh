#!/usr/bin/env bash
# Builds the Porcupine checker of this directory into OUT, for every test that runs it (kvclient's
# history test, kvserver's raft_broken, tests/e2e): with the Go toolchain the local cluster
# installs (/usr/local/go, else `go` on the PATH), its module and build caches under
# $KVSTORE_CACHE/go (Go's cache makes a rebuild cheap). No Go toolchain is an error, never a skip.
#
# usage: tests/linearizability/build.sh OUT
set -euo pipefail
out=$(realpath -m "${1:?usage: build.sh OUT}")
# shellcheck source=tests/lib/base.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/base.sh"
go=""
for candidate in /usr/local/go/bin/go go; do
  if "$candidate" version >/dev/null 2>&1; then go=$candidate; break; fi
done
if [[ -z $go ]]; then
  echo "the linearizability checker needs the Go toolchain (tests/cluster installs it at /usr/local/go)" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
cd "$(dirname "${BASH_SOURCE[0]}")"
GOMODCACHE="$KVSTORE_CACHE/go/mod" GOCACHE="$KVSTORE_CACHE/go/build" GOFLAGS=-mod=readonly \
  "$go" build -o "$out" .
