//! Spans: which task run called which. A task run started while another run
//! is current on the same thread is its child (a per-thread stack of current
//! runs); work handed to another thread or an async task carries a
//! [`SpanParent`] instead. Each process counts its call edges as ordinary
//! counters, `<callee>.calls[caller=<caller>,outcome=<outcome>]` (FORMAT.md,
//! "Call edges"), and a root run (no parent) may be captured as a trace
//! ([`crate::trace`]).
//!
//! ```
//! let registry = stats_core::Registry::new();
//! let (request, query) = (registry.task("request"), registry.task("db.query"));
//! let _ = request.run(|| query.run(|| Ok::<_, ()>(())));
//! let snapshot = registry.snapshot();
//! assert_eq!(
//!     snapshot.get("db.query.calls[caller=request,outcome=success]"),
//!     Some(stats_core::Value::Int(1))
//! );
//!
//! // Work handed to another thread names its parent explicitly.
//! let guard = request.start();
//! let parent = guard.parent();
//! std::thread::scope(|s| {
//!     s.spawn(|| query.run_in(&parent, || Err::<(), _>("timeout")));
//! });
//! guard.success();
//! assert_eq!(
//!     registry.snapshot().get("db.query.calls[caller=request,outcome=error]"),
//!     Some(stats_core::Value::Int(1))
//! );
//! ```

use std::sync::atomic::Ordering::Release;
use std::sync::{Arc, Mutex, PoisonError};

use super::trace::SpanRef;
use super::{OUTCOME_LABELS, Outcome, TaskCell};
use crate::cell::{DECLARATION_EPOCH, Kind, Scalar};
use crate::tags;
use crate::value::Value;

/// The counters of one call edge (caller → callee), one per outcome.
pub(crate) struct Edge {
    counters: [Scalar; 3],
}

impl Edge {
    fn new(callee: &TaskCell, caller: &str) -> Edge {
        let split = tags::split(callee.name());
        let user: Vec<(&str, &str)> = split
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let base = format!("{}.calls", split.base);
        Edge {
            counters: OUTCOME_LABELS.map(|label| {
                let mut pairs = user.clone();
                pairs.push(("caller", caller));
                pairs.push(("outcome", label));
                Scalar::new(tags::join(&base, &pairs).into(), Kind::Counter)
            }),
        }
    }

    pub(crate) fn counters(&self) -> impl Iterator<Item = &Scalar> {
        self.counters.iter()
    }

    #[inline]
    pub(crate) fn count(&self, outcome: Outcome) {
        self.counters[outcome.slot()].add_int(1);
    }
}

/// The call edges into one task, by caller; lives in the callee's cell.
#[derive(Default)]
pub(crate) struct Edges {
    by_caller: Mutex<Vec<(usize, Arc<Edge>)>>,
}

impl Edges {
    /// The edge from `caller` (slow path: under the callee's lock).
    pub(crate) fn get(&self, callee: &TaskCell, caller: &Arc<TaskCell>) -> Arc<Edge> {
        let key = Arc::as_ptr(caller) as usize;
        let mut list = self
            .by_caller
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, edge)) = list.iter().find(|(k, _)| *k == key) {
            return Arc::clone(edge);
        }
        let edge = Arc::new(Edge::new(callee, caller.name()));
        list.push((key, Arc::clone(&edge)));
        // New `#counter` lines to declare: kept declaration lines are
        // stale. Release: whoever reads the new epoch finds the edge.
        DECLARATION_EPOCH.fetch_add(1, Release);
        edge
    }

    /// Counts one call from the caller whose cell is at address `caller`,
    /// if its edge exists (slow path: a guard dropped on another thread
    /// than the one it started on, or while its thread-local is gone).
    /// Whether it did.
    pub(crate) fn count_from(&self, caller: usize, outcome: Outcome) -> bool {
        let list = self
            .by_caller
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let edge = list.iter().find(|(k, _)| *k == caller);
        if let Some((_, edge)) = edge {
            edge.count(outcome);
        }
        edge.is_some()
    }

    /// The runs with `outcome` counted on these edges, summed.
    pub(crate) fn total(&self, outcome: Outcome) -> Value {
        let list = self
            .by_caller
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        list.iter().fold(Value::Int(0), |sum, (_, edge)| {
            sum.sum(edge.counters[outcome.slot()].value())
        })
    }

    /// Calls `f` with every edge's counters, in the order the edges
    /// appeared.
    pub(crate) fn for_each_counter(&self, mut f: impl FnMut(&Scalar)) {
        let list = self
            .by_caller
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, edge) in list.iter() {
            edge.counters().for_each(&mut f);
        }
    }
}

/// Counts one call from `caller` into `callee` that ended with `outcome`
/// (a run reported after the fact, [`crate::Task::record_finished`]).
pub(crate) fn count_edge(callee: &Arc<TaskCell>, caller: &Arc<TaskCell>, outcome: Outcome) {
    callee.edges().get(callee, caller).count(outcome);
}

/// Where a run's parent is: the caller's task and, when the caller is part
/// of a captured trace, its span in it.
///
/// Get one with [`crate::TaskGuard::parent`] or [`SpanParent::current`],
/// move it to another thread or into an async task, and start the child
/// there with [`crate::Task::start_in`] or [`crate::Task::run_in`]. Cheap to
/// clone, `Send + Sync`.
#[derive(Clone)]
pub struct SpanParent {
    pub(crate) cell: Arc<TaskCell>,
    pub(crate) span: Option<SpanRef>,
}

impl std::fmt::Debug for SpanParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanParent")
            .field("task", &self.cell.name())
            .field("traced", &self.span.is_some())
            .finish()
    }
}

impl SpanParent {
    /// The innermost task run current on this thread, if any.
    pub fn current() -> Option<SpanParent> {
        super::stack::current()
    }

    /// The parent's task name.
    pub fn task_name(&self) -> &str {
        self.cell.name()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Registry, SpanParent, Value};

    #[test]
    fn nested_runs_count_edges_by_outcome_and_only_for_children() {
        let r = Registry::new();
        let (a, b, c) = (r.task("a"), r.task("b[shard=1]"), r.task("c"));
        let _ = a.run(|| {
            let _ = b.run(|| c.run(|| Ok::<_, ()>(())));
            let _ = b.run(|| Err::<(), _>(()));
            c.run(|| Ok::<_, ()>(()))
        });
        let s = r.snapshot();
        for edge in [
            "b.calls[shard=1,caller=a,outcome=success]",
            "b.calls[shard=1,caller=a,outcome=error]",
            "c.calls[caller=b\\[shard\\=1\\],outcome=success]",
            "c.calls[caller=a,outcome=success]",
        ] {
            assert_eq!(s.get(edge), Some(Value::Int(1)), "{edge}");
        }
        assert!(
            s.iter().all(|(n, _)| !n.starts_with("a.calls")),
            "a is a root"
        );
        let mut kinds = Vec::new();
        r.render_kinds_into(&mut kinds);
        let kinds = String::from_utf8(kinds).unwrap();
        assert!(kinds.contains("#counter c.calls[caller=a,outcome=panic]: 1\n"));
    }

    #[test]
    fn panics_count_on_the_edge_and_the_stack_unwinds() {
        let r = Registry::new();
        let (a, b) = (r.task("a"), r.task("b"));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.run(|| b.run(|| -> Result<(), ()> { panic!("boom") }))
        }));
        assert!(unwound.is_err());
        assert!(SpanParent::current().is_none(), "stack empty again");
        assert_eq!(
            r.snapshot().get("b.calls[caller=a,outcome=panic]"),
            Some(Value::Int(1))
        );
    }

    #[test]
    fn guards_dropped_out_of_order_leave_the_stack_clean() {
        let r = Registry::new();
        let (a, b) = (r.task("a"), r.task("b"));
        let ga = a.start();
        let gb = b.start();
        assert_eq!(SpanParent::current().unwrap().task_name(), "b");
        ga.success();
        assert_eq!(SpanParent::current().unwrap().task_name(), "b");
        gb.success();
        assert!(SpanParent::current().is_none());
    }
}
