#!/usr/bin/env python3
"""Compares builds of host-aggregator over one set of writers, turn by turn.

Starts N `pipe-writer --linger` processes (180 stats each, the shape
bench-aggregate.sh feeds them) in a fresh directory, then, for each build
given, one `serve --max-age 0s --no-history` on its own port. Requests go
to the servers in turn, the first server moving one place every round, so
no build always reads right after another. Prints, per build, the median
wall time of `GET /stats` and the mean CPU per pass of its server (from
/proc/<pid>/stat, in clock ticks: hence means over many requests). With
--dump, times `dump` processes the same way instead.

Build each aggregator on its own (`cargo build --release -p
host-aggregator --bin host-aggregator`): built together with an example it
gets the examples' dev-dependency features (see BENCHMARKS.md).

Usage: scripts/ab-aggregators.py [--writers N] [--rounds R] [--dump]
       PIPE_WRITER AGGREGATOR [AGGREGATOR...]
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request


def commands(stats):
    lines = []
    for i in range(stats):
        module = i // 3
        lines.append(
            [
                f"app.module{module}.requests[code=200] += {i}\n",
                f"app.module{module}.bytes_sent += {i * 1000}\n",
                f"app.module{module}.latency_seconds: {i / 8.0}\n",
            ][i % 3]
        )
    return "".join(lines)


def cpu_ms(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def turned(items, round_number):
    k = round_number % len(items)
    return items[k:] + items[:k]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--dump", action="store_true")
    parser.add_argument("pipe_writer")
    parser.add_argument("aggregators", nargs="+")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    base = tempfile.mkdtemp(prefix="ab-aggregators-")
    pipes = os.path.join(base, "pipes")
    os.mkdir(pipes)
    feed = os.path.join(base, "commands")
    with open(feed, "w") as f:
        f.write(commands(180))
    env = dict(os.environ, STATS_PIPE_DIR=pipes)
    writers, servers = [], []
    try:
        for _ in range(args.writers):
            with open(feed) as stdin:
                writers.append(
                    subprocess.Popen(
                        [args.pipe_writer, "--dir", pipes, "--linger"],
                        stdin=stdin,
                        stdout=subprocess.DEVNULL,
                    )
                )
        while len([n for n in os.listdir(pipes) if n.endswith(".stats")]) < args.writers:
            time.sleep(0.2)

        walls = {build: [] for build in args.aggregators}
        cpus = {build: 0.0 for build in args.aggregators}
        if args.dump:
            for r in range(args.rounds):
                for build in turned(args.aggregators, r):
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    started = time.perf_counter()
                    subprocess.run([build, "dump"], env=env, stdout=subprocess.DEVNULL, check=True)
                    walls[build].append((time.perf_counter() - started) * 1000)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpus[build] += 1000 * (
                        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                    )
                    time.sleep(0.2)
        else:
            for i, build in enumerate(args.aggregators):
                port = 17900 + i
                server = subprocess.Popen(
                    [build, "serve", "--listen", f"127.0.0.1:{port}", "--max-age", "0s",
                     "--no-history", "--gc-interval", "0s"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                servers.append((build, port, server))
            time.sleep(2)
            for _, port, _ in servers:
                for _ in range(3):  # the second pass on keeps pidfds
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read()
            for r in range(args.rounds):
                for build, port, server in turned(servers, r):
                    cpu = cpu_ms(server.pid)
                    started = time.perf_counter()
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read()
                    walls[build].append((time.perf_counter() - started) * 1000)
                    cpus[build] += cpu_ms(server.pid) - cpu
                    time.sleep(0.2)
        what = "dump" if args.dump else "GET /stats"
        for build in args.aggregators:
            print(
                f"{build}: {what} wall median {statistics.median(walls[build]):.2f} ms, "
                f"CPU mean {cpus[build] / args.rounds:.2f} ms ({args.rounds} rounds, "
                f"{args.writers} writers)"
            )
    finally:
        for _, _, server in servers:
            server.terminate()
        for writer in writers:
            writer.terminate()
        for process in writers + [s for _, _, s in servers]:
            process.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
