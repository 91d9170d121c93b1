#!/usr/bin/env bash
# Copy the operator's generated CRD into the chart, byte for byte (check.sh fails when they
# differ). Regenerate the source first when the Rust types change:
#   cargo run -p operator --bin kvstore-operator -- crd > crds/kvstore.dev_kvstores.yaml
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$ROOT/crds/kvstore.dev_kvstores.yaml"
dst="$ROOT/charts/kvstore-operator/crds/kvstore.dev_kvstores.yaml"
[[ -f $src ]] || { echo "sync-crd.sh: $src is missing: generate it with the operator's \`crd\` subcommand" >&2; exit 1; }
mkdir -p "$(dirname "$dst")"
cp "$src" "$dst"
echo "sync-crd.sh: copied crds/kvstore.dev_kvstores.yaml -> charts/kvstore-operator/crds/" >&2
