"""The package's decorators on functions and coroutines: ``@task(name)``
counts an error when the call raises (the exception propagates) and a
success otherwise; ``@histogram(name).time()`` records every call's
duration. Coroutines interleave on one thread, so each call must keep its
own run. Prints the outcomes this process counted, as JSON, then waits
for a line on stdin so the test can read the pipe."""

import asyncio
import json
import sys

import stats_pipe

job = stats_pipe.task("job")
coro = stats_pipe.task("coro")
latency = stats_pipe.histogram("latency")


@job
def work(fail):
    if fail:
        raise ValueError("bad input")
    return 7


@coro
@latency.time()
async def fetch(delay, fail):
    await asyncio.sleep(delay)
    if fail:
        raise KeyError("missing")
    return delay


async def main():
    # Interleaved: the first call starts first and ends last.
    calls = [fetch(0.05, False), fetch(0.01, True), fetch(0.02, False)]
    return await asyncio.gather(*calls, return_exceptions=True)


returned = []
for fail in [False, True, False, True, False]:
    try:
        returned.append(work(fail))
    except ValueError as error:
        returned.append(str(error))
gathered = asyncio.run(main())
print(
    json.dumps(
        {
            "returned": returned,
            "gathered": [repr(g) for g in gathered],
            "job": job.outcomes(),
            "coro": coro.outcomes(),
            "pipe": stats_pipe.path(),
            "names": [latency.name, stats_pipe.counter("c").name, stats_pipe.gauge("g").name],
        }
    ),
    flush=True,
)
sys.stdin.readline()
