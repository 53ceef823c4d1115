#!/usr/bin/env bash
# The aggregator's read benchmark (issue 15, point 5), one run per process
# count, each reader interleaved pass by pass with the others (see
# host-aggregator/examples/bench_pass.rs for exactly what each does):
#  - stats:    GET /stats from `host-aggregator serve --max-age 0s
#              --no-history` (a fresh pass per request) over our writers;
#  - dump:     `host-aggregator dump`, a fresh process per pass;
#  - collect:  the library's Collector::collect in the driver;
#  - bare-ours: a bare reader (open non-blocking, epoll, read to end of
#              file, close; no checks, no parsing) over our writers;
#  - bare-min: the same over minimal writers (pipe-writer/examples/
#              minimal_writer.rs: one FIFO and one spare swapped by
#              RENAME_EXCHANGE, no sweeper, no process stats);
#  - python:   prometheus_client multiprocess, MultiProcessCollector +
#              generate_latest over N processes' files.
# Writers: N real `pipe-writer --linger` fed STATS lines, and N minimal
# writers fed the same lines. Then the writers' CPU (every thread of every
# writer process) while the bare reader reads both sets once a second, while
# `GET /stats` reads ours once a second, and while nobody reads.
#
# Output: `pass <reader> <procs> <median ms> <best ms> <median reader CPU ms/pass>
# <peak RSS KiB>` and `writers <phase> <set> <procs> <CPU ms/s> <wake-ups/s>`.
# `collect` and the bare readers run in the driver: its peak RSS is the
# collect row's. The load average is printed before and after each count.
#
# Both sides work in $TMPDIR (default /tmp: ext4 here).
# PAUSE_MS=N rests N ms before every timed read (default 0: back to back).
# PASSES is rounded up to whole blocks of the reader orders (6 rounds, 8
# with SECOND_AGGREGATOR): see bench_pass.rs for why the orders are balanced.
# SECOND_WRITER=path/to/pipe-writer-before runs another build of our writer
# as the second set instead of the minimal one (its name must start with
# `pipe-writer`; rows `other`): our writers before and after a change.
# SECOND_AGGREGATOR=path/to/host-aggregator-before (built on its own:
# `cargo build --release -p host-aggregator --bin host-aggregator`) times another build's
# `GET /stats` and `dump` in the same rounds (rows `stats-other`,
# `dump-other`): the aggregator before and after a change.
#
# Usage: [TMPDIR=/dev/shm] [PAUSE_MS=N] [SECOND_WRITER=..] [SECOND_AGGREGATOR=..] [PASSES=20] [STATS=180] [PACED_SECONDS=10]
#        scripts/bench-aggregate.sh [COUNTS...]   (default: 10 100 1000 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-10 100 1000 3000}")
read -r -a counts <<<"${counts[*]}"
target=${CARGO_TARGET_DIR:-target}
# The binaries on their own, as a user builds them: built in one command
# with an example, they would get the features that the examples'
# dev-dependencies turn on in shared crates (host-aggregator came out 7 %
# larger), and a SECOND_AGGREGATOR built on its own would not compare.
cargo build --release --quiet -p pipe-writer --bin pipe-writer
cargo build --release --quiet -p host-aggregator --bin host-aggregator
cargo build --release --quiet -p pipe-writer --example minimal_writer
cargo build --release --quiet -p host-aggregator --example bench_pass
python3 -c 'import prometheus_client' 2>/dev/null || pip install --quiet prometheus_client
# 3,000 writers of each kind, each holding a few descriptors, and the
# aggregator's 64 in flight.
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
for n in "${counts[@]}"; do
  echo "# $n processes; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$target/release/examples/bench_pass" "$target/release/pipe-writer" \
    "${SECOND_WRITER:-$target/release/examples/minimal_writer}" "$target/release/host-aggregator" \
    "$n" "${PASSES:-20}" "${STATS:-180}" "${PACED_SECONDS:-10}" |
    column -t
done
echo "# done; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
