#!/usr/bin/env bash
# Runs the cargo-fuzz (libFuzzer) targets in fuzz/ for a given time each and
# prints how many inputs each one executed. A crash, a hang (one input
# running over 10 s) or an allocation over the limits below fails the run;
# the input that did it is saved under fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default: 60 s, every target)
#   JOBS=2   run two targets at a time (one core each)
#   FUZZ_TARGET_DIR=DIR   cargo's target dir for the sanitizer build
#                         (default: $CARGO_TARGET_DIR/fuzz, else fuzz/target)
#
# Targets: line_parser (stats_core::Parser in random chunks, Snapshot::parse,
# envelope::verify), tags (tags::split/join), stdin_grammar (the pipe-writer
# binary's input module), http_route (http::target, the /history query and
# its globs). Seeds are fuzz/corpus/<target>/ (committed, read only); what
# libFuzzer finds goes to a scratch corpus under the target dir.
#
# cargo-fuzz needs a nightly compiler for -Zsanitizer; on a stable one the
# script sets RUSTC_BOOTSTRAP=1. It installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all_targets=(line_parser tags stdin_grammar http_route)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
jobs=${JOBS:-1}
target_dir=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}}
target_dir=${target_dir:-$PWD/fuzz/target}
work=$target_dir/work

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustc --version | grep -q nightly || export RUSTC_BOOTSTRAP=1

for t in "${targets[@]}"; do
  [ -d "fuzz/corpus/$t" ] || { echo "fuzz: unknown target $t (have: ${all_targets[*]})" >&2; exit 2; }
done
# Release with debug assertions and AddressSanitizer (cargo-fuzz's default).
for t in "${targets[@]}"; do
  cargo fuzz build --target-dir "$target_dir" -O -a "$t"
done
bin=$target_dir/x86_64-unknown-linux-gnu/release

# The bundled SQLite that host-aggregator links trips ASan's ODR check
# (cargo fuzz run turns it off the same way).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}

run_one() { # target → log in $work/<target>.log
  local t=$1
  mkdir -p "$work/corpus/$t" "fuzz/artifacts/$t"
  "$bin/$t" "$work/corpus/$t" "fuzz/corpus/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=256 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$work/$t.log" 2>&1
}

mkdir -p "$work"
running=0
declare -A status
for t in "${targets[@]}"; do
  echo "fuzz: running $t for ${seconds}s"
  run_one "$t" &
  status[$t]=$!
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
failed=0
printf '%-14s %8s %12s %10s %8s  %s\n' target seconds executions exec/s corpus result
for t in "${targets[@]}"; do
  if wait "${status[$t]}" 2>/dev/null; then :; fi
  log=$work/$t.log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  units=$(find "$work/corpus/$t" -type f | wc -l)
  if grep -qE '^(==[0-9]+==ERROR|SUMMARY: libFuzzer|.*panicked at)' "$log" || [ -z "$took" ]; then
    result="FAILED (see $log, fuzz/artifacts/$t/)"
    failed=1
  else
    result=ok
  fi
  printf '%-14s %8s %12s %10s %8s  %s\n' "$t" "${took:-?}" "${runs:-?}" "${per_second:-?}" "$units" "$result"
done
exit "$failed"
