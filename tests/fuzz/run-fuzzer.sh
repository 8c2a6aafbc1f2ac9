#!/bin/sh
# Runs one libFuzzer target: run-fuzzer.sh EXECUTABLE SEED_DIR WORK_DIR.
# Fuzzes for FUZZ_SECONDS (default 60) from the seeds and what earlier runs
# found (WORK_DIR/corpus); a crash, a sanitizer report or a broken property
# fails with the input saved in WORK_DIR/artifacts (rerun it with
# EXECUTABLE FILE). Extra libFuzzer flags: FUZZ_FLAGS.
set -eu
exe=$1 seeds=$2 work=$3
mkdir -p "$work/corpus" "$work/artifacts"
: "${ASAN_OPTIONS:=abort_on_error=1}"
: "${UBSAN_OPTIONS:=halt_on_error=1:abort_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS UBSAN_OPTIONS
# -close_fd_mask=2: the code's own warnings (a refused write-back) are noise
# here; libFuzzer and the sanitizers keep reporting on the original stderr.
# shellcheck disable=SC2086
exec "$exe" -max_total_time="${FUZZ_SECONDS:-60}" -timeout=30 -rss_limit_mb=2048 -close_fd_mask=2 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" ${FUZZ_FLAGS:-} "$work/corpus" "$seeds"
