"""multiprocessing.Pool (fork) of 8 workers adding to one counter
(tests/tests/python_package.rs).

The parent records first (so it serves its own pipe, and its values are in
memory when the workers are forked), then runs 200 tasks. While the workers
are still alive it reads every worker's pipe itself and checks: the worker's
`jobs` is exactly the sum of the tasks it ran, and none of the parent's
stats is there. It prints a JSON report, waits for a line on stdin (the test
reads the aggregator meanwhile), then closes the pool."""
import json
import multiprocessing as mp
import os
import sys
import time

import stats_pipe

jobs = stats_pipe.counter("jobs")  # made before the fork, used in the workers
PARENT_JOBS = 1000


def work(i):
    # A little time per task, so the tasks spread over the workers even
    # when the machine is busy (one fast worker could take them all).
    time.sleep(0.01)
    jobs.incr(i)
    stats_pipe.stats.set("worker.pid", os.getpid())
    return os.getpid(), i, stats_pipe.path()


def read_snapshot(path):
    """One complete snapshot: a read that raced another reader (the
    aggregator) may come back empty or torn (FORMAT.md); retry it."""
    for _ in range(100):
        with open(path) as pipe:
            text = pipe.read()
        if text.startswith("#stats-pipe:") and "\n#end: " in text:
            return text
        time.sleep(0.005)
    raise SystemExit(f"no complete snapshot from {path}: {text!r}")


def parse(text):
    stats = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(":")
        if name and not name.startswith("#"):
            stats[name.strip()] = value.strip()
    return stats


def main():
    jobs.incr(PARENT_JOBS)
    stats_pipe.stats.set("parent.only", 42)
    parent_path = stats_pipe.path()
    pool = mp.get_context("fork").Pool(8)
    results = pool.map(work, range(200), chunksize=5)
    per_worker, paths = {}, {}
    for pid, i, path in results:
        per_worker[pid] = per_worker.get(pid, 0) + i
        paths[pid] = path
    problems = []
    for pid, expected in per_worker.items():
        seen = parse(read_snapshot(paths[pid]))
        if seen.get("jobs") != str(expected):
            problems.append(f"worker {pid}: jobs {seen.get('jobs')} != {expected}")
        if "parent.only" in seen:
            problems.append(f"worker {pid} shows the parent's parent.only")
        if paths[pid] == parent_path or not paths[pid].endswith(f"/{pid}.stats"):
            problems.append(f"worker {pid} serves {paths[pid]}")
    parent = parse(read_snapshot(parent_path))
    if parent.get("jobs") != str(PARENT_JOBS) or parent.get("parent.only") != "42":
        problems.append(f"parent's pipe: {parent}")
    print(json.dumps({
        "workers": len(per_worker),
        "sum": sum(per_worker.values()),
        "parent_jobs": PARENT_JOBS,
        "problems": problems,
    }), flush=True)
    sys.stdin.readline()
    pool.close()
    pool.join()


if __name__ == "__main__":
    main()
