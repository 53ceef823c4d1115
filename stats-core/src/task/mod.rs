//! Tasks: monkit's `mon.Task()` in Rust idiom. A task wraps a function or a
//! scope and records how it ended (success, error, panic), how many are
//! running now and at most, and how long each took, split by outcome.
//!
//! ```
//! let registry = stats_core::Registry::new();
//! let task = registry.task("db.query");
//! let rows: Result<u32, String> = task.run(|| Ok(3));
//! assert_eq!(rows, Ok(3));
//!
//! fn lookup(task: &stats_core::Task) -> Result<(), std::num::ParseIntError> {
//!     let guard = task.start();
//!     "x".parse::<u32>()?; // returns early: the dropped guard counts an error
//!     guard.success();
//!     Ok(())
//! }
//! assert!(lookup(&task).is_err());
//! assert_eq!(task.outcomes(), stats_core::TaskOutcomes { success: 1, errors: 1, panics: 0 });
//! ```

pub mod span;
mod stack;
pub mod trace;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use crate::cell::{Kind, Scalar};
use crate::clock;
use crate::histogram::{Histogram, HistogramCell};
use crate::tags;
use crate::value::Value;
use span::{Edges, SpanParent};
use stack::Entered;
use trace::Tracer;

/// How a task run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Returned `Ok`, or its guard was marked successful.
    Success,
    /// Returned `Err`, or its guard was dropped without being marked
    /// successful (an early `?` return).
    Error,
    /// Panicked (the panic goes on after it is counted).
    Panic,
}

const OUTCOMES: [(Outcome, &str, &str); 3] = [
    (Outcome::Success, "success", "success"),
    (Outcome::Error, "errors", "error"),
    (Outcome::Panic, "panics", "panic"),
];

/// The `outcome` tag values, in slot order.
pub(crate) const OUTCOME_LABELS: [&str; 3] = ["success", "error", "panic"];

impl Outcome {
    /// The outcome as its `outcome` tag value: `success`, `error`, `panic`.
    pub fn label(self) -> &'static str {
        OUTCOME_LABELS[self.slot()]
    }

    /// The outcome a label names (what [`Outcome::label`] gives), for
    /// readers of trace lines and `#span` lines; `None` for anything else.
    pub fn from_label(label: &str) -> Option<Outcome> {
        [Outcome::Success, Outcome::Error, Outcome::Panic]
            .into_iter()
            .find(|o| o.label() == label)
    }

    /// Its index in per-outcome arrays.
    #[inline]
    pub(crate) fn slot(self) -> usize {
        match self {
            Outcome::Success => 0,
            Outcome::Error => 1,
            Outcome::Panic => 2,
        }
    }
}

/// Completed runs by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskOutcomes {
    /// Runs that succeeded.
    pub success: i64,
    /// Runs that failed.
    pub errors: i64,
    /// Runs that panicked.
    pub panics: i64,
}

/// The storage behind one task.
pub(crate) struct TaskCell {
    name: Box<str>,
    /// One counter per outcome, in `OUTCOMES` order, of the runs that have
    /// no call edge; a run with one is counted on its edge alone (one
    /// atomic add a run less), and an outcome's total is this counter plus
    /// the edges' ([`TaskCell::outcome_lines`]).
    outcomes: [Arc<Scalar>; 3],
    /// Durations per outcome, in `OUTCOMES` order.
    durations: [Histogram; 3],
    current: AtomicI64,
    highwater: AtomicI64,
    /// Call edges into this task, by caller ([`crate::span`]).
    edges: Edges,
    tracer: Arc<Tracer>,
}

impl TaskCell {
    pub(crate) fn new(name: Box<str>, tracer: Arc<Tracer>) -> TaskCell {
        let split = tags::split(&name);
        let base = split.base;
        let user_tags: Vec<(&str, &str)> = split
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let outcome_counter = |suffix: &str| {
            Arc::new(Scalar::new(
                tags::join(&format!("{base}.{suffix}"), &user_tags).into(),
                Kind::Counter,
            ))
        };
        let duration = |outcome: &str| {
            let mut with_outcome = user_tags.clone();
            with_outcome.push(("outcome", outcome));
            let name = tags::join(&format!("{base}.duration"), &with_outcome);
            Histogram::new(Arc::new(HistogramCell::new(name.into())))
        };
        TaskCell {
            outcomes: OUTCOMES.map(|(_, suffix, _)| outcome_counter(suffix)),
            durations: OUTCOMES.map(|(_, _, label)| duration(label)),
            name,
            current: AtomicI64::new(0),
            highwater: AtomicI64::new(0),
            edges: Edges::default(),
            tracer,
        }
    }

    pub(crate) fn edges(&self) -> &Edges {
        &self.edges
    }

    pub(crate) fn tracer(&self) -> &Arc<Tracer> {
        &self.tracer
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Name of a sub-stat (`.current`, `.highwater`), tags kept at the end.
    pub(crate) fn sub_name(&self, suffix: &str) -> String {
        let split = tags::split(&self.name);
        let pairs: Vec<(&str, &str)> = split
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        tags::join(&format!("{}.{suffix}", split.base), &pairs)
    }

    /// Each outcome counter's name, in `OUTCOMES` order.
    pub(crate) fn outcome_names(&self) -> impl Iterator<Item = &str> {
        self.outcomes.iter().map(|own| own.name())
    }

    /// Each outcome counter's name and its total (runs without an edge
    /// plus those counted on an edge).
    pub(crate) fn outcome_lines(&self) -> impl Iterator<Item = (&str, Value)> {
        OUTCOMES.iter().map(|(outcome, _, _)| {
            let own = &self.outcomes[outcome.slot()];
            (own.name(), own.value().sum(self.edges.total(*outcome)))
        })
    }

    pub(crate) fn duration_histograms(&self) -> impl Iterator<Item = &Histogram> {
        self.durations.iter()
    }

    pub(crate) fn current(&self) -> i64 {
        self.current.load(Relaxed)
    }

    pub(crate) fn highwater(&self) -> i64 {
        self.highwater.load(Relaxed)
    }

    #[inline]
    fn begin(&self) {
        let running = self.current.fetch_add(1, Relaxed) + 1;
        if running > self.highwater.load(Relaxed) {
            self.highwater.fetch_max(running, Relaxed);
        }
    }

    /// Ends a run; `on_edge`: it was counted on its call edge already.
    #[inline]
    fn end(&self, outcome: Outcome, elapsed: std::time::Duration, on_edge: bool) {
        self.current.fetch_sub(1, Relaxed);
        let slot = outcome.slot();
        if !on_edge {
            self.outcomes[slot].add_int(1);
        }
        self.durations[slot].record_duration(elapsed);
    }
}

/// A task handle: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Task {
    cell: Arc<TaskCell>,
}

impl Task {
    pub(crate) fn new(cell: Arc<TaskCell>) -> Task {
        Task { cell }
    }

    /// Runs `f` as one run of the task: `Ok` counts a success, `Err` an
    /// error, a panic a panic (and the panic continues).
    #[inline]
    pub fn run<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let guard = self.start();
        let result = f();
        guard.finish(&result);
        result
    }

    /// Starts a run. Mark it with [`TaskGuard::success`], [`TaskGuard::error`]
    /// or [`TaskGuard::finish`]; dropped unmarked it counts as an error, or
    /// as a panic while the thread is panicking.
    #[inline]
    pub fn start(&self) -> TaskGuard<'_> {
        self.start_under(None)
    }

    /// Starts a run as a child of `parent` (a run on another thread, or
    /// one an async task was handed), instead of this thread's current run.
    #[inline]
    pub fn start_in(&self, parent: &SpanParent) -> TaskGuard<'_> {
        self.start_under(Some(parent))
    }

    /// [`Task::run`] as a child of `parent` (see [`Task::start_in`]).
    #[inline]
    pub fn run_in<T, E>(
        &self,
        parent: &SpanParent,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let guard = self.start_in(parent);
        let result = f();
        guard.finish(&result);
        result
    }

    #[inline]
    fn start_under(&self, parent: Option<&SpanParent>) -> TaskGuard<'_> {
        self.cell.begin();
        let started = clock::now();
        TaskGuard {
            span: Some(stack::enter(&self.cell, parent, started)),
            task: &self.cell,
            started,
            outcome: None,
        }
    }

    /// Records a run that happened elsewhere and is reported only once it
    /// ended (a shell pipeline's step, given to the `pipe-writer` binary as
    /// a `#span` line): counted as [`Task::run`] counts one (its outcome,
    /// its duration, the most at once at least 1) and, with a `caller`, as
    /// a call from that task (FORMAT.md, "Call edges"). It is in no trace:
    /// the reporter assembles those ([`Tracer::record_finished`]).
    pub fn record_finished(
        &self,
        duration: std::time::Duration,
        outcome: Outcome,
        caller: Option<&Task>,
    ) {
        self.cell.begin();
        if let Some(caller) = caller {
            span::count_edge(&self.cell, &caller.cell, outcome);
        }
        self.cell.end(outcome, duration, caller.is_some());
    }

    /// Completed runs by outcome.
    pub fn outcomes(&self) -> TaskOutcomes {
        let mut totals = self.cell.outcome_lines().map(|(_, total)| match total {
            Value::Int(n) => n,
            Value::Float(f) => f as i64,
        });
        TaskOutcomes {
            success: totals.next().unwrap_or(0),
            errors: totals.next().unwrap_or(0),
            panics: totals.next().unwrap_or(0),
        }
    }

    /// Runs in progress now.
    pub fn current(&self) -> i64 {
        self.cell.current()
    }

    /// The most runs ever in progress at once.
    pub fn highwater(&self) -> i64 {
        self.cell.highwater()
    }

    /// The duration histogram of runs that ended with `outcome`.
    pub fn durations(&self, outcome: Outcome) -> &Histogram {
        &self.cell.durations[outcome.slot()]
    }

    /// The task's (sanitised) name.
    pub fn name(&self) -> &str {
        self.cell.name()
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name())
            .field("outcomes", &self.outcomes())
            .finish()
    }
}

/// One run of a task in progress; records its outcome when dropped.
#[must_use = "a task run is recorded when its guard is dropped"]
pub struct TaskGuard<'a> {
    task: &'a Arc<TaskCell>,
    span: Option<Entered>,
    started: clock::Instant,
    outcome: Option<Outcome>,
}

impl TaskGuard<'_> {
    /// This run as the parent of work handed to another thread or an async
    /// task ([`Task::start_in`]).
    pub fn parent(&self) -> SpanParent {
        match &self.span {
            Some(entered) => entered.parent(self.task),
            None => SpanParent {
                cell: Arc::clone(self.task),
                span: None,
            },
        }
    }

    /// Ends the run as a success.
    pub fn success(mut self) {
        self.outcome = Some(Outcome::Success);
    }

    /// Ends the run as an error.
    pub fn error(mut self) {
        self.outcome = Some(Outcome::Error);
    }

    /// Ends the run by a result: `Ok` is a success, `Err` an error.
    pub fn finish<T, E>(mut self, result: &Result<T, E>) {
        self.outcome = Some(if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Error
        });
    }
}

impl Drop for TaskGuard<'_> {
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() {
            Outcome::Panic
        } else {
            self.outcome.unwrap_or(Outcome::Error)
        };
        let ended = clock::now();
        let span = self.span.take();
        let on_edge = span
            .as_ref()
            .is_some_and(|span| span.leave(self.task, outcome));
        self.task
            .end(outcome, clock::delta(self.started, ended), on_edge);
        if let Some(span) = span {
            span.end(outcome, ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task::new(Arc::new(TaskCell::new(
            "job[queue=fast]".into(),
            Arc::default(),
        )))
    }

    #[test]
    fn counts_success_error_and_panic_and_the_panic_goes_on() {
        let t = task();
        assert_eq!(t.run(|| Ok::<_, ()>(1)), Ok(1));
        assert_eq!(t.run(|| Err::<(), _>("no")), Err("no"));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.run(|| -> Result<(), ()> { panic!("boom") })
        }));
        assert!(unwound.is_err(), "the panic continues past the task");
        t.start().success();
        drop(t.start());
        assert_eq!(
            t.outcomes(),
            TaskOutcomes {
                success: 2,
                errors: 2,
                panics: 1
            }
        );
        assert_eq!(t.durations(Outcome::Panic).distribution().count, 1);
        assert_eq!(t.current(), 0);
    }

    #[test]
    fn tracks_current_and_highwater() {
        let t = task();
        let a = t.start();
        let b = t.start();
        assert_eq!((t.current(), t.highwater()), (2, 2));
        a.success();
        b.success();
        let _c = t.start();
        assert_eq!((t.current(), t.highwater()), (1, 2));
    }

    #[test]
    fn sub_stats_keep_the_tags_last() {
        let t = task();
        assert_eq!(t.cell.outcomes[1].name(), "job.errors[queue=fast]");
        assert_eq!(
            t.durations(Outcome::Success).name(),
            "job.duration[queue=fast,outcome=success]"
        );
        assert_eq!(t.cell.sub_name("current"), "job.current[queue=fast]");
    }
}
