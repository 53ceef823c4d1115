#!/usr/bin/env bash
# The aggregator's read benchmark: one read pass over 10, 100 and 1,000
# writer processes with 180 stats each, side by side with Python
# prometheus_client's multiprocess mode on the same counts, in one run.
# Prints a table: wall (median and best of the passes), CPU per pass, peak
# RSS of the reading process. Every writer is a child of bench_pass and is
# killed when it exits.
#
# Both sides work in $TMPDIR (default /tmp). Here /tmp is ext4, where the
# writer's mkfifo+rename per snapshot is a journaled metadata change; run
# with TMPDIR=/dev/shm for tmpfs, as /tmp is on most hosts.
#
# Usage: [TMPDIR=/dev/shm] scripts/bench-aggregate.sh [COUNTS...]   (default: 10 100 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-10 100 1000}")
read -r -a counts <<<"${counts[*]}"
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p host-aggregator --example bench_writer --example bench_pass
ulimit -n 4096 2>/dev/null || true
printf '%-7s %6s %10s %9s %12s %13s %8s %6s %6s\n' reader procs median_ms best_ms cpu_ms/pass peak_rss_KiB stats ok opens
for n in "${counts[@]}"; do
  rust=$("$target/release/examples/bench_pass" "$target/release/examples/bench_writer" "$n" 20 180)
  py=$(python3 scripts/bench/prom_multiproc.py "$n" 10)
  for line in "$rust" "$py"; do
    # shellcheck disable=SC2086
    printf '%-7s %6s %10s %9s %12s %13s %8s %6s %6s\n' $line
  done
done
