#!/usr/bin/env python3
"""Peak memory of `host-aggregator serve` under N concurrent /traces requests
over P writers with full trace rings, for two builds side by side.

Usage:
  scripts/bench-traces-rss.py --traced-app target/debug/traced_app \\
      --build before=/tmp/ha-before --build after=target/debug/host-aggregator \\
      [--processes 200] [--requests 50] [--rounds 3] [--limit 100] [--cap-mib 6144] \\
      [--deadline 1s]

Starts P `traced_app` processes (tests/src/bin; `--dir DIR`, `run 1000`:
1,000 traced requests each, a full ring) once, then per round and per build
(the builds alternate, first one then the other, then the other way round)
a fresh `serve --listen 127.0.0.1:0 --pipe-dir DIR`, one /healthz, VmHWM
(/proc/<pid>/status), N /traces?limit=L at once (one thread each), VmHWM
again. Prints each round and, per build, the median growth of the peak, the
answers that were 200, and the ratio of the medians. A server whose VmRSS
passes --cap-mib is killed and its round reported as over the cap, so the
machine is never run out of memory.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1 << 20


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError("%s not in /proc/%d/status" % (key, pid))


def get(addr, path, timeout=120):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def start_writers(app, directory, count):
    writers = []
    for _ in range(count):
        child = subprocess.Popen(
            [app, "--dir", directory],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        first = child.stdout.readline()
        if not first.startswith("serving "):
            raise RuntimeError("traced_app said %r" % first)
        writers.append(child)
    def drain(child):
        for line in child.stdout:
            if line.strip() == "done":
                break

    # Read every writer's measurements at once: a writer blocks on its
    # stdout pipe while nobody reads it.
    readers = [threading.Thread(target=drain, args=(child,)) for child in writers]
    for child, reader in zip(writers, readers):
        child.stdin.write("run 1000\n")
        child.stdin.flush()
        reader.start()
    for reader in readers:
        reader.join()
    return writers


def trace_bytes(directory):
    total = 0
    traces = os.path.join(directory, "traces")
    for name in os.listdir(traces):
        if not name.endswith(".traces") or name.startswith("."):
            continue
        with open(os.path.join(traces, name), "rb") as f:
            total += len(f.read())
    return total


def one_round(binary, directory, requests, limit, cap_kb, deadline):
    server = subprocess.Popen(
        [binary, "--deadline", deadline, "serve", "--listen", "127.0.0.1:0",
         "--pipe-dir", directory],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = server.stdout.readline()
        addr = first.strip().rsplit("http://", 1)[-1]
        get(addr, "/healthz")
        before = status_kb(server.pid, "VmHWM")
        statuses = []
        read_ok = []
        over = threading.Event()

        def ask():
            try:
                status, body = get(addr, "/traces?limit=%d" % limit)
                statuses.append(status)
                if status == 200:
                    read_ok.append(json.loads(body)["sources"]["ok"])
            except Exception:  # the server was killed at the cap
                statuses.append(0)

        threads = [threading.Thread(target=ask) for _ in range(requests)]
        started = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if status_kb(server.pid, "VmRSS") > cap_kb:
                over.set()
                peak = status_kb(server.pid, "VmHWM")
                server.kill()
                break
            time.sleep(0.02)
        else:
            peak = status_kb(server.pid, "VmHWM")
        for t in threads:
            t.join()
        took = time.monotonic() - started
        pipes = "%d-%d" % (min(read_ok), max(read_ok)) if read_ok else "-"
        return (peak - before) * 1024, statuses.count(200), took, over.is_set(), pipes
    finally:
        server.kill()
        server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--traced-app", required=True)
    parser.add_argument("--build", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--processes", type=int, default=200)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--cap-mib", type=int, default=6144)
    parser.add_argument("--deadline", default="1s", help="the servers' read deadline")
    args = parser.parse_args()
    builds = [b.split("=", 1) for b in args.build]
    directory = tempfile.mkdtemp(prefix="bench-traces-rss.")
    os.chmod(directory, 0o700)
    writers = []
    try:
        writers = start_writers(args.traced_app, directory, args.processes)
        data = trace_bytes(directory)
        print("%d writers with full rings: %.1f MiB of trace JSON (one read)"
              % (args.processes, data / MIB))
        print("%d concurrent /traces?limit=%d, %d rounds, builds alternating"
              % (args.requests, args.limit, args.rounds))
        results = {name: [] for name, _ in builds}
        for r in range(args.rounds):
            order = builds if r % 2 == 0 else list(reversed(builds))
            for name, binary in order:
                grown, ok, took, over, pipes = one_round(
                    binary, directory, args.requests, args.limit, args.cap_mib * 1024,
                    args.deadline)
                results[name].append((grown, ok, over))
                print("round %d %-8s peak RSS +%7.1f MiB%s  %d/%d answers 200  %.1f s  "
                      "pipes read per answer %s"
                      % (r + 1, name, grown / MIB, " (killed at the cap)" if over else "",
                         ok, args.requests, took, pipes))
                sys.stdout.flush()
        medians = {}
        for name, rows in results.items():
            medians[name] = statistics.median(g for g, _, _ in rows)
            print("%-8s median peak RSS growth %7.1f MiB, answers 200: %s%s"
                  % (name, medians[name] / MIB, [ok for _, ok, _ in rows],
                     "  (over the cap in %d rounds)" % sum(o for _, _, o in rows)
                     if any(o for _, _, o in rows) else ""))
        names = [name for name, _ in builds]
        if len(names) == 2 and medians[names[1]] > 0:
            print("ratio %s/%s: %.1f" % (names[0], names[1], medians[names[0]] / medians[names[1]]))
    finally:
        for child in writers:
            try:
                child.stdin.write("exit\n")
                child.stdin.flush()
            except OSError:
                pass
        for child in writers:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
