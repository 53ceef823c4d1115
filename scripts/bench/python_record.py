#!/usr/bin/env python3
"""Per-call cost of recording one stat from Python, side by side in one run
(scripts/bench-python.sh). Rounds interleave the candidates so they share
the machine's noise; each cell is the median over rounds of one timed loop
of CALLS calls, in ns per call, the loop included (an empty loop is shown
so it can be taken off by eye).

Candidates:
  stats_pipe counter handle    c.incr()                 (ours)
  stats_pipe by name           stats.incr("requests")   (ours)
  stats_pipe histogram         h.observe(0.25)          (ours)
  prometheus_client multiproc  Counter.inc() with PROMETHEUS_MULTIPROC_DIR
  prometheus_client (single)   Counter.inc(), no multiprocess mode
  pipestatic-style             a pure-Python dict under a lock, as
                               pipestatic's incr does
"""
import os
import statistics
import sys
import tempfile
import threading
import timeit
from collections import defaultdict

CALLS = int(os.environ.get("CALLS", "200000"))
ROUNDS = int(os.environ.get("ROUNDS", "15"))

os.environ.setdefault("STATS_PIPE_DIR", tempfile.mkdtemp(prefix="bench-python-pipes-"))
prom_dir = tempfile.mkdtemp(prefix="bench-python-prom-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = prom_dir

import prometheus_client  # noqa: E402  (after the env var: multiprocess mode)
from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client import values as prom_values  # noqa: E402

import stats_pipe  # noqa: E402
from stats_pipe import stats  # noqa: E402

multiproc_counter = prometheus_client.Counter("requests_mp", "requests", registry=CollectorRegistry())
# A single-process counter for reference: the value class is picked at
# import from the env var, so build one with the in-memory class.
prom_values.ValueClass = prom_values.MutexValue
single_counter = prometheus_client.Counter("requests_single", "requests", registry=CollectorRegistry())
assert type(multiproc_counter._value).__name__ == "MmapedValue", type(multiproc_counter._value)
assert type(single_counter._value).__name__ == "MutexValue", type(single_counter._value)

_lock = threading.Lock()
_stats = defaultdict(int)


def pipestatic_incr(name, value=1):
    with _lock:
        _stats[name] += value


counter = stats_pipe.counter("requests_handle")
histogram = stats_pipe.histogram("latency")

CANDIDATES = [
    ("empty loop", "pass", {}),
    ("stats_pipe counter.incr() (handle)", "c.incr()", {"c": counter}),
    ('stats_pipe stats.incr(name)', 'stats.incr("requests")', {"stats": stats}),
    ("stats_pipe histogram.observe(v)", "h.observe(0.25)", {"h": histogram}),
    ("prometheus_client multiprocess Counter.inc()", "c.inc()", {"c": multiproc_counter}),
    ("prometheus_client single-process Counter.inc()", "c.inc()", {"c": single_counter}),
    ("pipestatic-style pure Python incr(name)", 'incr("requests")', {"incr": pipestatic_incr}),
]


def main():
    timers = [timeit.Timer(stmt, globals=env) for _, stmt, env in CANDIDATES]
    for t in timers:
        t.timeit(CALLS // 10)  # warm up (and start serving)
    samples = [[] for _ in CANDIDATES]
    for _ in range(ROUNDS):
        for i, t in enumerate(timers):
            samples[i].append(t.timeit(CALLS) / CALLS * 1e9)
    medians = [statistics.median(s) for s in samples]
    by_name = dict(zip((c[0] for c in CANDIDATES), medians))
    print(f"# python {sys.version.split()[0]}, {CALLS} calls x {ROUNDS} rounds, ns/call (median, min-max)")
    for (name, _, _), s, m in zip(CANDIDATES, samples, medians):
        print(f"{name:50s} {m:8.1f}   ({min(s):.1f}-{max(s):.1f})")
    handle = by_name["stats_pipe counter.incr() (handle)"]
    named = by_name["stats_pipe stats.incr(name)"]
    prom = by_name["prometheus_client multiprocess Counter.inc()"]
    pure = by_name["pipestatic-style pure Python incr(name)"]
    print(f"prometheus multiprocess / handle: {prom / handle:.1f}x   / by name: {prom / named:.1f}x")
    print(f"pipestatic-style / handle: {pure / handle:.1f}x   / by name: {pure / named:.1f}x")
    assert stats_pipe.Counter("requests_handle").value > 0


if __name__ == "__main__":
    main()
