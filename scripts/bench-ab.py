#!/usr/bin/env python3
"""Runs two builds of one criterion bench side by side, interleaved round
by round (before, after, before, after, ...), and prints each benchmark's
median of the per-round medians for both and their ratio. On a shared,
noisy machine this is how a before/after figure is taken: both sides see
the same load.

Usage:
  scripts/bench-ab.py BEFORE_BIN AFTER_BIN [ROUNDS] [FILTER]

BEFORE_BIN and AFTER_BIN are criterion bench executables (`cargo bench
--no-run` prints their paths; copy the first aside before building the
second). ROUNDS defaults to 5; FILTER is passed to criterion.
"""

import re
import statistics
import subprocess
import sys

UNITS = {"ps": 1e-6, "ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
LINE = re.compile(r"^(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]")


def one_run(binary, bench_filter):
    """{benchmark: median in µs} of one criterion run."""
    args = [binary, "--bench", "--warm-up-time", "1", "--measurement-time", "2"]
    if bench_filter:
        args.append(bench_filter)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    found = {}
    # criterion puts a long name on its own line and the figures on the next
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("time:") and i > 0 and not LINE.match(line):
            line = lines[i - 1].strip() + " " + line.strip()
        match = LINE.match(line)
        if match:
            found[match[1]] = float(match[2]) * UNITS[match[3]]
    return found


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    before, after = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    bench_filter = sys.argv[4] if len(sys.argv) > 4 else ""
    runs = {"before": {}, "after": {}}
    for _ in range(rounds):
        for side, binary in (("before", before), ("after", after)):
            for name, value in one_run(binary, bench_filter).items():
                runs[side].setdefault(name, []).append(value)
    print(f"{'benchmark':<40} {'before µs':>12} {'after µs':>12} {'after/before':>13}  rounds")
    for name in runs["before"]:
        b = statistics.median(runs["before"][name])
        a = statistics.median(runs["after"].get(name, [float("nan")]))
        print(f"{name:<40} {b:>12.4f} {a:>12.4f} {a / b:>13.2f}  {len(runs['before'][name])}")


if __name__ == "__main__":
    main()
