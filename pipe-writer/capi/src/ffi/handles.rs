//! Handles: a name looked up once per process into the metric that C
//! records through, and a task's run.
//!
//! A handle is leaked on purpose: it lives until the process exits (in its
//! children too), so C gets it as a `const StatsPipeCounter *` it never
//! frees, and Rust as an `Option<&'static StatsPipeHandle<_>>`.

use stats_core::{Counter, Gauge, Histogram, Task, TaskGuard};

use super::guard::guarded;
use super::lent::{Argument, StatsPipeText};
use crate::fork::PerProcess;
use crate::runtime::{self, Runtime};

/// A handle on the metric called `name`: the chain of this process's
/// metric and its forked children's (each looks its own up on first use).
pub struct StatsPipeHandle<M: 'static> {
    name: Box<str>,
    chain: &'static PerProcess<M>,
}

/// One run of a task, from `stats_pipe_task_begin` until
/// `stats_pipe_task_end`.
pub struct TaskRun {
    guard: TaskGuard<'static>,
}

impl TaskRun {
    /// Counts the run as a success (`ok`) or an error, with its duration.
    pub(crate) fn end(self, ok: bool) {
        if ok {
            self.guard.success();
        } else {
            self.guard.error();
        }
    }
}

/// A metric a handle can hold: how a process finds its own by name.
pub trait Lookup: Send + Sync + Sized + 'static {
    /// The metric called `name` in `runtime`.
    fn lookup(runtime: &'static Runtime, name: &str) -> Self;
}

impl Lookup for Counter {
    fn lookup(runtime: &'static Runtime, name: &str) -> Self {
        runtime.registry().counter(name)
    }
}

impl Lookup for Gauge {
    fn lookup(runtime: &'static Runtime, name: &str) -> Self {
        runtime.registry().gauge(name)
    }
}

impl Lookup for Histogram {
    fn lookup(runtime: &'static Runtime, name: &str) -> Self {
        runtime.registry().histogram(name)
    }
}

impl Lookup for &'static Task {
    fn lookup(runtime: &'static Runtime, name: &str) -> Self {
        runtime.task(name)
    }
}

/// Makes a handle that lives until the process exits: look the name up
/// once per process, then record without a lookup. `None` (NULL, and a
/// recorded error) for a NULL or non-UTF-8 name.
pub(crate) fn make<M: Lookup>(
    function: &'static str,
    name: StatsPipeText<'_>,
) -> Option<&'static StatsPipeHandle<M>> {
    guarded(function, None, || {
        let name = name.get(function, Argument::Name)?;
        let chain = PerProcess::leak(M::lookup(runtime::current(), name));
        let handle = StatsPipeHandle {
            name: name.into(),
            chain,
        };
        Some(&*Box::leak(Box::new(handle)))
    })
}

/// Runs `op` on this process's metric behind `handle` (nothing for NULL),
/// with serving started if need be. A panic is caught and recorded.
pub(crate) fn with_handle<M: Lookup, R>(
    function: &'static str,
    handle: Option<&StatsPipeHandle<M>>,
    op: impl FnOnce(&M) -> R,
) -> Option<R> {
    let handle = handle?;
    guarded(function, None, || {
        let runtime = runtime::recording();
        Some(op(handle.chain.get(|_| M::lookup(runtime, &handle.name))))
    })
}

/// Begins a run of `task`.
pub(crate) fn begin(task: &&'static Task) -> Box<TaskRun> {
    Box::new(TaskRun {
        guard: task.start(),
    })
}
