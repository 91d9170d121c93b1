# shellcheck shell=bash
# What every script of the project shares, the local cluster's and the chart check's included:
# the cache layout and log(). Sourced, not run; it only sets variables and defines log, so it
# is safe to source from any script (it changes no option and not the working directory).
#
#   $KVSTORE_CACHE               build outputs kept between runs and clones
#   $KVSTORE_CACHE/cargo-target  CARGO_TARGET_DIR, shared by every cargo build of the project
#
# log MESSAGE...: "[TAG HH:MM:SS] MESSAGE" on stderr, TAG being $KV_LOG_TAG (the script's own
# tag, see tests/lib/common.sh), or "[HH:MM:SS] MESSAGE" when it has none (the cluster scripts).

export KVSTORE_CACHE="${KVSTORE_CACHE:-$HOME/.cache/kvstore-operator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KVSTORE_CACHE/cargo-target}"

# The tag names the script that logs: it is not passed on to the scripts that one runs.
export -n KV_LOG_TAG
log() { printf '[%s] %s\n' "${KV_LOG_TAG:+$KV_LOG_TAG }$(date -u +%H:%M:%S)" "$*" >&2; }
