#!/usr/bin/env bash
# The aggregator's read benchmark: one read pass over 10, 100 and 1,000
# writer processes with ~180 stats each, side by side in one run with
#  - `floor`: the bare FIFO round trip with the same writers (open, read to
#    end of file, close; no checks, no parsing), interleaved pass by pass
#    with ours, and
#  - `python`: prometheus_client's multiprocess mode on the same counts.
# Writers (children of bench_pass, killed when it exits): WRITER=pipe-writer
# (default) runs the real `pipe-writer --linger` binary fed 180 lines on
# stdin; WRITER=stand-in runs host-aggregator/examples/bench_writer.rs, the
# same stats and envelope without kind lines, spare pool or orphan sweeper
# (see BENCHMARKS.md for why both are measured).
# Prints a table: wall (median and best of the passes), CPU per pass, peak
# RSS of the reading process. For `floor`, the `stats` column is bytes per
# snapshot and its peak RSS is the same process's as `rust` (ignore it).
#
# Both sides work in $TMPDIR (default /tmp: ext4 here). Run with
# TMPDIR=/dev/shm for tmpfs, as /tmp is on most hosts.
#
# PAUSE_MS=N rests N ms before every timed read (rust and floor alike), so
# each read finds the writers idle, as `serve` reading once a second does;
# the default 0 reads back to back, the writers' worst case (see
# BENCHMARKS.md).
#
# Usage: [TMPDIR=/dev/shm] [WRITER=pipe-writer|stand-in] [PAUSE_MS=N] scripts/bench-aggregate.sh [COUNTS...]
#        (default counts: 10 100 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-10 100 1000}")
read -r -a counts <<<"${counts[*]}"
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p pipe-writer --bin pipe-writer
cargo build --release --quiet -p host-aggregator --example bench_pass --example bench_writer
case ${WRITER:-pipe-writer} in
  pipe-writer) writer=$target/release/pipe-writer ;;
  stand-in) writer=$target/release/examples/bench_writer ;;
  *) echo "WRITER must be pipe-writer or stand-in" >&2; exit 2 ;;
esac
ulimit -n 8192 2>/dev/null || true
printf '%-7s %6s %10s %9s %12s %13s %8s %6s %6s\n' reader procs median_ms best_ms cpu_ms/pass peak_rss_KiB stats ok opens
for n in "${counts[@]}"; do
  rust=$("$target/release/examples/bench_pass" "$writer" "$n" 20 180)
  py=$(python3 scripts/bench/prom_multiproc.py "$n" 10)
  while read -r line; do
    # shellcheck disable=SC2086
    printf '%-7s %6s %10s %9s %12s %13s %8s %6s %6s\n' $line
  done <<<"$rust
$py"
done
