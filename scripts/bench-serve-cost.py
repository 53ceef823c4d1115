#!/usr/bin/env python3
"""The writers' CPU per serve (issue 15, "writers' total CPU while read once
a second <= 1.5x the minimal writers'"), measured precisely: K writers of
each set, every set read round-robin, interleaved pipe by pipe (set A's
writer 0, set B's writer 0, ..., set A's writer 1, ...), M rounds spaced
PERIOD seconds apart (a round starts PERIOD after the last one started, so
each writer is read once per PERIOD: 1 s is "read once a second"; a short
period such as 0.02 s gives many more serves per minute, each a cold-ish
wake-up). CPU is every thread of every writer process, the first field of
/proc/<pid>/task/<tid>/schedstat (nanoseconds on a CPU), taken before and
after the M rounds; wake-ups are the third field (times scheduled in).
Per serve: CPU / (K * M). Repeated R times; medians and ratios printed.

Sets: `--set NAME=PATH` (any number, in order). A binary whose file name
starts with `pipe-writer` is run as `PATH --dir D --linger` (our writer);
any other as `PATH D` (pipe-writer/examples/minimal_writer.rs). Every
writer is fed the lines scripts/bench-aggregate.sh feeds (STATS stats, by
default 180: host-aggregator/examples/bench_pass.rs, `commands`). The
first set is the one the ratios are taken against the last of (by default
`ours` against `minimal`).

Each read opens non-blocking, waits with poll (5 s deadline) and reads to
end of file, then checks the bytes hold exactly one envelope (`#stats-pipe`
header and `#end: N` trailer): a serve that is not one whole snapshot aborts
the run.

Usage:
  scripts/bench-serve-cost.py --set ours=target/release/pipe-writer \
      --set minimal=target/release/examples/minimal_writer \
      [-k 50] [-m 30] [--period 1.0] [-r 3] [--stats 180] [--threads]

`--threads` also prints each set's CPU per serve by thread name (comm).
Run it under `flock -o /tmp/bench.lock` on the shared machine.
"""

import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def commands(stats):
    """The writers' input: bench_pass.rs's `commands`, line for line."""
    out = []
    for i in range(stats):
        module = i // 3
        if i % 3 == 0:
            out.append(f"app.module{module}.requests[code=200] += {i}\n")
        elif i % 3 == 1:
            out.append(f"app.module{module}.bytes_sent += {i * 1000}\n")
        else:
            out.append(f"app.module{module}.latency_seconds: {repr(i / 8.0)}\n")
    return "".join(out)


def thread_times(pid):
    """{thread name: [cpu ns, times scheduled in]} summed over a process."""
    found = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                fields = f.read().split()
            with open(f"{base}/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue  # a thread that just ended
        entry = found.setdefault(name, [0, 0])
        entry[0] += int(fields[0])
        entry[1] += int(fields[2])
    return found


def set_times(pids):
    total = {}
    for pid in pids:
        for name, (cpu, runs) in thread_times(pid).items():
            entry = total.setdefault(name, [0, 0])
            entry[0] += cpu
            entry[1] += runs
    return total


def read_once(path):
    """One read of a pipe, as a careful reader does; the bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    chunks = []
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + 5.0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"{path}: no end of file within 5 s")
            if not poller.poll(left * 1000):
                continue
            try:
                data = os.read(fd, 1 << 17)
            except BlockingIOError:
                continue
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(fd)
    return b"".join(chunks)


def whole(snapshot):
    return (
        snapshot.startswith(b"#stats-pipe")
        and snapshot.endswith(b"\n")
        and snapshot[:-1].rsplit(b"\n", 1)[-1].startswith(b"#end: ")
        and snapshot.count(b"#stats-pipe:") == 1
    )


def start_set(binary, directory, input_path, k):
    os.makedirs(directory)
    ours = os.path.basename(binary).startswith("pipe-writer")
    args = [binary, "--dir", directory, "--linger"] if ours else [binary, directory]
    procs = []
    for _ in range(k):
        with open(input_path, "rb") as stdin:
            procs.append(
                subprocess.Popen(args, stdin=stdin, stdout=subprocess.DEVNULL)
            )
    paths = [os.path.join(directory, f"{p.pid}.stats") for p in procs]
    until = time.monotonic() + 60
    for path in paths:
        while not os.path.exists(path):
            if time.monotonic() > until:
                raise SystemExit(f"{path} never appeared")
            time.sleep(0.005)
    return procs, paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("-k", type=int, default=50, help="writers per set")
    ap.add_argument("-m", type=int, default=30, help="rounds per repeat")
    ap.add_argument("--period", type=float, default=1.0, help="seconds per round")
    ap.add_argument("-r", type=int, default=3, help="repeats")
    ap.add_argument("--stats", type=int, default=180)
    ap.add_argument("--threads", action="store_true")
    args = ap.parse_args()
    sets = [tuple(s.split("=", 1)) for s in args.set]

    base = tempfile.mkdtemp(prefix="serve-cost-")
    input_path = os.path.join(base, "commands")
    with open(input_path, "w") as f:
        f.write(commands(args.stats))
    started = {}
    try:
        for name, binary in sets:
            started[name] = start_set(
                os.path.abspath(binary), os.path.join(base, name), input_path, args.k
            )
        time.sleep(1.0)  # stdin read, first path checks settled
        # Round r reads writer i of every set in a row, starting with set
        # r mod S, so no set is always first to wake (cold caches) or last.
        names = [name for name, _ in sets]

        def order(r):
            turn = names[r % len(names) :] + names[: r % len(names)]
            return [(name, started[name][1][i]) for i in range(args.k) for name in turn]

        # Warm-up: first-touch faults, buffers grown, spare pools filled.
        for _ in range(3):
            for name, path in order(0):
                read_once(path)
            time.sleep(args.period)
        per_serve = {name: [] for name, _ in sets}
        wakes = {name: [] for name, _ in sets}
        by_thread = {name: {} for name, _ in sets}
        print(
            f"# {args.k} writers per set, {args.m} rounds of {args.period} s, "
            f"{args.r} repeats; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        for repeat in range(args.r):
            before = {n: set_times([p.pid for p in started[n][0]]) for n, _ in sets}
            next_round = time.monotonic()
            overran = 0
            for r in range(args.m):
                for name, path in order(r):
                    snapshot = read_once(path)
                    if not whole(snapshot):
                        raise SystemExit(f"{path}: not one whole snapshot: {snapshot[:80]!r}")
                next_round += args.period
                if next_round < time.monotonic():
                    overran += 1
                    next_round = time.monotonic()
                time.sleep(max(0.0, next_round - time.monotonic()))
            # The work after each serve (probes, refreshes) has ended by now.
            after = {n: set_times([p.pid for p in started[n][0]]) for n, _ in sets}
            serves = args.k * args.m
            line = [f"repeat {repeat + 1}:"]
            for name, _ in sets:
                cpu = sum(v[0] for v in after[name].values()) - sum(
                    v[0] for v in before[name].values()
                )
                runs = sum(v[1] for v in after[name].values()) - sum(
                    v[1] for v in before[name].values()
                )
                per_serve[name].append(cpu / serves / 1000)
                wakes[name].append(runs / serves)
                for thread, (c, r) in after[name].items():
                    b = before[name].get(thread, [0, 0])
                    entry = by_thread[name].setdefault(thread, [[], []])
                    entry[0].append((c - b[0]) / serves / 1000)
                    entry[1].append((r - b[1]) / serves)
                line.append(f"{name} {per_serve[name][-1]:.1f} us ({wakes[name][-1]:.2f} wake-ups)")
            if overran:
                line.append(f"({overran} rounds took longer than the period)")
            print("  ".join(line), flush=True)
        print(f"# load average {os.getloadavg()[0]:.2f}")
        print(f"{'set':<12} {'us/serve (median)':>18} {'wake-ups/serve':>15}  runs")
        for name, _ in sets:
            runs = ", ".join(f"{v:.1f}" for v in per_serve[name])
            print(
                f"{name:<12} {statistics.median(per_serve[name]):>18.1f} "
                f"{statistics.median(wakes[name]):>15.2f}  [{runs}]"
            )
        last = sets[-1][0]
        for name, _ in sets[:-1]:
            ratios = [a / b for a, b in zip(per_serve[name], per_serve[last])]
            print(
                f"ratio {name}/{last}: median {statistics.median(ratios):.3f} "
                f"[{', '.join(f'{r:.3f}' for r in ratios)}]"
            )
        if args.threads:
            for name, _ in sets:
                for thread, (cpus, runs) in sorted(by_thread[name].items()):
                    print(
                        f"  {name:<10} {thread:<16} {statistics.median(cpus):8.1f} us/serve "
                        f"{statistics.median(runs):6.3f} wake-ups/serve"
                    )
    finally:
        for procs, _ in started.values():
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
