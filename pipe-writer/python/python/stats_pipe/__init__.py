"""Typed, fork-safe process stats, served as a live, cat-able FIFO.

Every process serves its stats at ``<dir>/<pid>.stats`` (``STATS_PIPE_DIR``,
default ``/tmp/stats-pipe``); ``host-aggregator`` sums them across the host.

pipestatic's API, as a drop-in::

    from stats_pipe import stats
    stats.incr("requests")          # serving starts on the first record
    stats.set("load avg", 0.5)      # int stays int; once a float, always a float

Typed handles (look the name up once; a call is one atomic add)::

    requests = stats_pipe.counter("requests")
    requests.incr()
    latency = stats_pipe.histogram("latency[route=/a]")
    with latency.time():
        ...

monkit-style tasks (success/errors counted, durations per outcome)::

    @stats_pipe.task("job")
    def job(): ...

Fork-safe: a child made by ``fork`` (gunicorn workers, ``multiprocessing``
with the fork start method) starts from an empty registry and serves its
own pipe as soon as it records; handles made before the fork record into
the child's stats. ``STATS_PIPE_AUTOSTART=0`` turns serving on the first
record off (then call ``start()``). At exit a process waits up to
``STATS_PIPE_LINGER`` seconds for one more read of its pipe, so an
aggregator sees its last counts (unset: 2.5 s, and only if the pipe was
read before; short-lived workers want it set, e.g. to twice the
aggregator's interval).
"""

import atexit
import functools
import inspect
import os
import sys
import threading
import time as _time

from . import _native
from ._native import (
    Counter,
    Gauge,
    StatsPipeError,
    last_error,
    path,
    render,
    start,
    stop,
)

__all__ = [
    "stats",
    "incr",
    "set",
    "observe",
    "counter",
    "gauge",
    "histogram",
    "task",
    "tagged",
    "start",
    "stop",
    "path",
    "last_error",
    "render",
    "Counter",
    "Gauge",
    "Histogram",
    "StatsPipeError",
]

incr = _native.incr
set = _native.set  # noqa: A001 - pipestatic's name
observe = _native.observe


class _Stats:
    """pipestatic's ``stats`` object: ``incr(name, value=1)``, ``set(name, value)``."""

    __slots__ = ()
    incr = _native.incr
    set = _native.set
    observe = _native.observe


stats = _Stats()


def counter(name):
    """A counter handle for ``name``: ``incr(n=1)``."""
    return Counter(name)


def gauge(name):
    """A gauge handle for ``name``: ``set(v)``, ``add(n=1)``."""
    return Gauge(name)


class _Timer:
    """Times a ``with`` block or every call of a decorated function."""

    __slots__ = ("_histogram", "_starts")

    def __init__(self, histogram):
        self._histogram = histogram
        self._starts = threading.local()

    def __enter__(self):
        stack = self._starts.__dict__.setdefault("stack", [])
        stack.append(_time.perf_counter())
        return self

    def __exit__(self, *exc):
        started = self._starts.stack.pop()
        self._histogram.observe(_time.perf_counter() - started)
        return False

    def __call__(self, func):
        histogram = self._histogram
        return _decorate(func, lambda: _Timing(histogram))


class Histogram(_native.Histogram):
    """A histogram handle: ``observe(v)``; ``time()`` as a context manager
    or decorator records durations in seconds."""

    def time(self):
        """``with h.time():`` or ``@h.time()``."""
        return _Timer(self)


def histogram(name):
    """A histogram handle for ``name`` (merged bucket by bucket across processes)."""
    return Histogram(name)


class task:  # noqa: N801 - used like a function: task(name)
    """A monkit-style task: ``@task(name)`` on functions and coroutines, or
    ``with task(name):``. A run that raises counts as an error (the
    exception propagates); each outcome has its own duration histogram
    (``name.duration[outcome=...]``), plus ``name.current`` and
    ``name.highwater``."""

    __slots__ = ("_handle", "_runs")

    def __init__(self, name):
        self._handle = _native.TaskHandle(name)
        self._runs = threading.local()

    def __enter__(self):
        self._runs.__dict__.setdefault("stack", []).append(self._handle.begin())
        return self

    def __exit__(self, exc_type, exc, tb):
        self._runs.stack.pop().end(exc_type is None)
        return False

    def outcomes(self):
        """``(success, errors, panics)`` completed in this process."""
        return self._handle.outcomes()

    def __call__(self, func):
        handle = self._handle
        return _decorate(func, lambda: _Run(handle))


class _Timing:
    """One timed call of a decorated function: its duration in seconds goes
    to the histogram, whatever the outcome."""

    __slots__ = ("_histogram", "_started")

    def __init__(self, histogram):
        self._histogram = histogram

    def __enter__(self):
        self._started = _time.perf_counter()

    def __exit__(self, *exc):
        self._histogram.observe(_time.perf_counter() - self._started)
        return False


class _Run:
    """One run of a decorated task: an error if the call raised (the
    exception propagates), else a success."""

    __slots__ = ("_handle", "_run")

    def __init__(self, handle):
        self._handle = handle

    def __enter__(self):
        self._run = self._handle.begin()

    def __exit__(self, exc_type, exc, tb):
        self._run.end(exc_type is None)
        return False


def _decorate(func, scope):
    """``func`` (a function or a coroutine function) with each call inside
    ``with scope():``. Each call gets its own scope object, so calls that
    interleave (threads, coroutines awaiting) never share one."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def scoped_async(*args, **kwargs):
            with scope():
                return await func(*args, **kwargs)

        return scoped_async

    @functools.wraps(func)
    def scoped(*args, **kwargs):
        with scope():
            return func(*args, **kwargs)

    return scoped


def tagged(name, tags=None, **kwargs):
    """``name[k=v,...]`` with keys and values escaped (FORMAT.md, "Tags"):
    ``tagged("http.requests", method="GET", code=200)``."""
    items = list(tags.items()) if tags else []
    items.extend(kwargs.items())
    return _native.tagged(name, [(str(k), str(v)) for k, v in items])


# --- fork and exit ---------------------------------------------------------
# The pthread_atfork handler (Rust) already moved the child to a fresh,
# empty registry and closed its parent's FIFO descriptors; these hooks make
# the child's runtime at once and flush at exit.

_mp_registered = False


def _before_fork():
    # multiprocessing's workers leave with os._exit (no atexit): have them
    # stop (and linger for a last read) through multiprocessing's own exit
    # finalizers, registered in the child by its after-fork hooks.
    global _mp_registered
    if not _mp_registered and "multiprocessing.util" in sys.modules:
        _mp_registered = True
        sys.modules["multiprocessing.util"].register_after_fork(_MpToken, _mp_child)


class _MpToken:
    pass


def _mp_child(_token):
    import multiprocessing.util as mp_util

    mp_util.Finalize(None, _native._at_exit, exitpriority=0)


os.register_at_fork(before=_before_fork, after_in_child=_native._after_fork_in_child)
atexit.register(_native._at_exit)
