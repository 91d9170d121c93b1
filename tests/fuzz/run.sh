#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and sums up.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]      (default 20)
#
# Each target starts from the committed seeds (fuzz/corpus/<target>, read only), with its
# dictionary (fuzz/dict/<target>.dict). Budgets of 120 s and more also start from, and add to,
# the corpus grown by earlier long runs ($KVSTORE_CACHE/fuzz-corpus/<target>);
# shorter ones keep what they find in a scratch dir, since replaying a grown corpus alone can
# take longer than a short budget. A crash stops that target; its input is saved under
# fuzz/artifacts/<target>/ and the log under $KVSTORE_CACHE/fuzz-logs/ ($KVSTORE_CACHE: see
# tests/lib/base.sh).
# Last line: "fuzz: N passed, M failed"; the exit status is non-zero when any target failed.
#
# Environment:
#   FUZZ_TARGETS     targets to run (default: every target `cargo fuzz list` shows)
#   FUZZ_SANITIZER   address (default) | none   (none runs about twice as many inputs)
#   FUZZ_BUILD       release (default: optimized, as cargo fuzz builds) | dev (unoptimized: a cold
#                    build takes a fraction of the time, each input runs slower; make test's
#                    20 s budget is spent mostly building). Debug assertions are on in both.
#   FUZZ_TOOLCHAIN   rustup toolchain to build with (default: nightly when installed, else
#                    stable with RUSTC_BOOTSTRAP=1, which the sanitizer flags need)
#   FUZZ_MAX_LEN     largest input in bytes (default 4096)
#   FUZZ_JOBS        targets run at once (default: the number of cores)
set -euo pipefail

budget="${1:-20}"
if ! [[ "$budget" =~ ^[0-9]+$ ]] || [ "$budget" -lt 1 ]; then
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
fi

root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/lib/base.sh
source "$root/tests/lib/base.sh"
cache="$KVSTORE_CACHE"
target_dir="$cache/fuzz-target"
corpus_root="$cache/fuzz-corpus"
log_root="$cache/fuzz-logs"
sanitizer="${FUZZ_SANITIZER:-address}"
build="${FUZZ_BUILD:-release}"
case "$build" in
  release) build_flags=() ;; # cargo fuzz's default: optimized, with debug assertions
  dev) build_flags=(--dev) ;;
  *) echo "FUZZ_BUILD must be release or dev, got $build" >&2; exit 2 ;;
esac
max_len="${FUZZ_MAX_LEN:-4096}"
mkdir -p "$target_dir" "$corpus_root" "$log_root"

# Instrumented builds get their own target dir (one per build kind, so that make test's and
# make fuzz's do not evict each other); the shared one must not be thrashed.
unset CARGO_TARGET_DIR
target_dir="$target_dir/$build-$sanitizer"

# The toolchain: cargo-fuzz passes -Z flags, which need nightly or RUSTC_BOOTSTRAP=1 on stable.
cargo=(cargo)
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
  cargo=(cargo "+$FUZZ_TOOLCHAIN")
elif command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
  cargo=(cargo +nightly)
fi
if ! "${cargo[@]}" --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi
toolchain_note="$("${cargo[@]}" --version)${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

cd "$root"
fuzz_flags=(--target-dir "$target_dir" --sanitizer "$sanitizer" "${build_flags[@]}")
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  mapfile -t targets < <("${cargo[@]}" fuzz list)
fi

echo "fuzz: building ${targets[*]} with $toolchain_note, sanitizer $sanitizer, $build build"
# All targets at once: they share one library, so one build serves them all.
if ! build_log="$("${cargo[@]}" fuzz build "${fuzz_flags[@]}" 2>&1)"; then
  echo "$build_log" | tail -n 40
  echo "fuzz: 0 passed, ${#targets[@]} failed (build)"
  exit 1
fi

# The http target opens a kvserver data dir in $TMPDIR: give it one that goes away afterwards.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# One target's run; its summary lines go to $scratch/result/<target> and its status to .rc.
run_target() {
  local t="$1" work log status=0 units rate corpus out="$scratch/result/$1"
  if [ "$budget" -ge 120 ]; then work="$corpus_root/$t"; else work="$scratch/corpus/$t"; fi
  mkdir -p "$work"
  log="$log_root/$t.log"
  local args=(-max_total_time="$budget" -max_len="$max_len" -timeout=30 -print_final_stats=1)
  [ -f "fuzz/dict/$t.dict" ] && args+=(-dict="fuzz/dict/$t.dict")
  # New inputs go to the first corpus dir (the cache); the committed seeds are only read.
  TMPDIR="$scratch" "${cargo[@]}" fuzz run "${fuzz_flags[@]}" "$t" "$work" "fuzz/corpus/$t" \
    -- "${args[@]}" >"$log" 2>&1 || status=$?
  units="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  units="${units:-0}"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  corpus="$(find "$work" -type f | wc -l)"
  if [ "$status" -eq 0 ] && ! grep -q 'Test unit written to' "$log"; then
    echo "fuzz: $t ok: $units executions in ${budget}s (${rate:-?}/s), corpus $corpus inputs" >"$out"
    echo "$units" >"$out.units"
  else
    {
      echo "fuzz: $t FAILED (exit $status) after $units executions; log: $log"
      # The panic or sanitizer report, and where the crashing input was written.
      { grep -E -A 1 "panicked at" "$log" | head -n 6; grep -E "ERROR: |^SUMMARY: " "$log"; } || true
      grep -E "Test unit written to|Base64:" "$log" || true
      echo "fuzz: reproduce with: ${RUSTC_BOOTSTRAP:+RUSTC_BOOTSTRAP=1 }${cargo[*]} fuzz run ${fuzz_flags[*]} $t <artifact>"
    } >"$out"
    echo fail >"$out.rc"
  fi
}

# Targets run FUZZ_JOBS at a time (default: one per core): each is single-threaded, so the
# same budget per target costs a fraction of the wall time.
jobs="${FUZZ_JOBS:-$(nproc)}"
mkdir -p "$scratch/result"
running=0
for t in "${targets[@]}"; do
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

passed=0
failed=0
total_units=0
for t in "${targets[@]}"; do
  cat "$scratch/result/$t" 2>/dev/null || echo "fuzz: $t FAILED: it left no result"
  if [ -f "$scratch/result/$t.rc" ] || [ ! -f "$scratch/result/$t.units" ]; then
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
    total_units=$((total_units + $(cat "$scratch/result/$t.units")))
  fi
done

echo "fuzz: $total_units executions in passing targets"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
