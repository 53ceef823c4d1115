"""Forks 300 children while the parent's pipe is being read without pause
(by the test, from other processes) and while another parent thread records
(tests/tests/python_package.rs). Every child must record into an empty
registry, serve nothing of the parent's and exit; no fork may deadlock.
Prints the parent's pipe path, then "ok N" (or the problems) at the end."""
import os
import sys
import threading

import stats_pipe

hits = stats_pipe.counter("storm.hits")
stats_pipe.stats.set("storm.parent_only", 1)
print(stats_pipe.path(), flush=True)
sys.stdin.readline()  # the test's readers are running

stop = threading.Event()


def record():
    while not stop.is_set():
        hits.incr()
        stats_pipe.stats.incr("storm.by_name")


recorder = threading.Thread(target=record, daemon=True)
recorder.start()

problems = []
for _ in range(300):
    pid = os.fork()
    if pid == 0:
        hits.incr(5)
        text = stats_pipe.render()
        ok = "storm.hits: 5\n" in text and "parent_only" not in text and "by_name" not in text
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        problems.append(f"child {pid} exit status {status}")
stop.set()
recorder.join()
print("ok 300" if not problems else "; ".join(problems[:5]), flush=True)
