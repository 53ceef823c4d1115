#!/usr/bin/env python3
"""prometheus_client multiprocess mode, the peer of the aggregator's read pass.

Creates N processes' worth of multiprocess .db files (as N worker processes
would leave them in PROMETHEUS_MULTIPROC_DIR) with ~180 metrics each: 60
counters with a label, 60 counters, 60 gauges (livesum). Then times one
scrape, `MultiProcessCollector` + `generate_latest`, as a scrape endpoint
does it, PASSES times. Prints:
  python N <median ms> <min ms> <cpu ms per scrape> <peak RSS KiB> <samples>

Usage: prom_multiproc.py N [PASSES]
       prom_multiproc.py N --driven
With --driven it writes the files, prints "ready", then scrapes once for
every "pass" line on stdin and prints "<wall ms> <cpu ms>" (so a driver can
interleave it pass by pass with other readers); at the end of stdin it
prints "<peak RSS KiB> <samples>" and removes the files.
"""
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector


def write_process(path, pid, per_kind):
    counters = MmapedDict(os.path.join(path, "counter_%d.db" % pid))
    gauges = MmapedDict(os.path.join(path, "gauge_livesum_%d.db" % pid))
    for i in range(per_kind):
        name = "app_module%d_requests" % i
        key = mmap_key(name, name + "_total", ["code"], ["200"], "requests")
        counters.write_value(key, float(i), 0.0)
        name = "app_module%d_bytes_sent" % i
        key = mmap_key(name, name + "_total", [], [], "bytes sent")
        counters.write_value(key, float(i * 1000), 0.0)
        name = "app_module%d_latency_seconds" % i
        key = mmap_key(name, name, [], [], "latency")
        gauges.write_value(key, i / 8.0, 0.0)
    counters.close()
    gauges.close()


def scrape(path):
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


def driven(path):
    print("ready", flush=True)
    samples = 0
    for line in sys.stdin:
        if line.strip() != "pass":
            continue
        start, cpu0 = time.perf_counter(), time.process_time()
        text = scrape(path)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
        samples = text.count(b"\n") - text.count(b"\n#")
        print("%.3f %.3f" % (wall * 1000, cpu * 1000), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("%d %d" % (peak, samples), flush=True)


def main():
    n = int(sys.argv[1])
    path = tempfile.mkdtemp(prefix="prom-multiproc-bench-")
    try:
        for pid in range(100000, 100000 + n):
            write_process(path, pid, 60)
        if len(sys.argv) > 2 and sys.argv[2] == "--driven":
            driven(path)
            return
        passes = int(sys.argv[2]) if len(sys.argv) > 2 else 10
        walls = []
        cpu0 = time.process_time()
        samples = 0
        for _ in range(passes):
            start = time.perf_counter()
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=path)
            text = generate_latest(registry)
            walls.append(time.perf_counter() - start)
            samples = text.count(b"\n") - text.count(b"\n#")
        cpu = (time.process_time() - cpu0) / passes
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("python %d %.2f %.2f %.2f %d %d" % (
            n, statistics.median(walls) * 1000, min(walls) * 1000, cpu * 1000, peak, samples))
    finally:
        shutil.rmtree(path)


if __name__ == "__main__":
    main()
