//! The per-thread stack of current task runs ([`crate::span`]), built so a
//! run nested under another costs no reference-count traffic: the thread
//! keeps every task cell and call edge it has met in slabs of its own, and
//! a frame on the stack names its cell and edge by slot. One hash lookup
//! per run, keyed by (caller's slot, callee's address), finds both.
//!
//! A guard may end on another thread than the one it started on (held
//! across an `.await` on a work-stealing runtime) or after its thread-local
//! is gone; its edge is then counted through the callee's own edge list,
//! found by the caller's address ([`Edges::count_from`](super::span::Edges)).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::span::{Edge, SpanParent};
use super::trace::{SpanRef, TraceBuf};
use super::{Outcome, TaskCell};
use crate::clock;

/// Lookup entries at which a thread forgets what it knows (all but what
/// its current runs use) and learns it again.
pub(crate) const KNOWN_LIMIT: usize = 4096;

/// No slot: a root run's caller, a root run's edge.
const NONE: u32 = u32::MAX;

/// Thread identities, so a guard can tell whether it ends where it began.
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

/// One current run on a thread's stack.
struct Frame {
    token: u64,
    /// Slot of its task's cell in [`Local::cells`].
    cell: u32,
    /// Slot of its call edge in [`Local::edges`] ([`NONE`]: a root run).
    edge: u32,
    span: Option<SpanRef>,
    /// The last child run's callee address and what the lookup gave, so a
    /// loop calling one task skips the hash lookup.
    last_child: (usize, Known),
}

/// What a lookup of (caller slot, callee address) gives: the callee's
/// cell slot and the edge's slot ([`NONE`] for the key of a bare cell).
#[derive(Clone, Copy)]
struct Known {
    cell: u32,
    edge: u32,
}

/// A cache entry that matches no cell (no cell lives at address 0).
const NOT_CACHED: (usize, Known) = (
    0,
    Known {
        cell: NONE,
        edge: NONE,
    },
);

struct Local {
    /// This thread's identity (0 until its first run).
    thread: u64,
    next_token: u64,
    stack: Vec<Frame>,
    /// The last root run's cell address and what the lookup gave.
    last_root: (usize, Known),
    /// Every cell met, pinned: their addresses are lookup keys, so none may
    /// be freed and reused while an entry names it.
    cells: Vec<Arc<TaskCell>>,
    edges: Vec<Arc<Edge>>,
    known: HashMap<(u32, usize), Known, foldhash::fast::FixedState>,
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local {
            thread: 0,
            next_token: 1,
            stack: Vec::new(),
            last_root: NOT_CACHED,
            cells: Vec::new(),
            edges: Vec::new(),
            known: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0xed9e)),
        })
    };
}

/// What a running task's guard keeps of its place among spans.
pub(crate) struct Entered {
    /// Its frame on its thread's stack (0: none, the thread-local was gone).
    token: u64,
    /// The thread whose stack holds the frame.
    thread: u64,
    /// The caller's cell address (0: a root run, no edge to count).
    caller: usize,
    span: Option<SpanRef>,
    /// The run is the root of the trace in `span`.
    root: bool,
}

/// Enters a run of `cell` under `explicit` (`None`: this thread's current
/// run, if any).
#[inline]
pub(crate) fn enter(
    cell: &Arc<TaskCell>,
    explicit: Option<&SpanParent>,
    started: clock::Instant,
) -> Entered {
    LOCAL
        .try_with(|local| match local.try_borrow_mut() {
            Ok(mut local) => local.enter(cell, explicit, started),
            Err(_) => Entered::none(),
        })
        .unwrap_or_else(|_| Entered::none())
}

/// The innermost run current on this thread, as a parent.
pub(crate) fn current() -> Option<SpanParent> {
    LOCAL
        .try_with(|local| {
            let local = local.try_borrow().ok()?;
            let frame = local.stack.last()?;
            Some(SpanParent {
                cell: Arc::clone(&local.cells[frame.cell as usize]),
                span: frame.span.clone(),
            })
        })
        .ok()
        .flatten()
}

impl Local {
    #[inline]
    fn enter(
        &mut self,
        cell: &Arc<TaskCell>,
        explicit: Option<&SpanParent>,
        started: clock::Instant,
    ) -> Entered {
        let address = Arc::as_ptr(cell) as usize;
        let (caller, span, root, cached) = match explicit {
            Some(parent) => (
                self.slot_of(&parent.cell),
                parent.span.as_ref().and_then(|p| p.child(cell, started)),
                false,
                None,
            ),
            None => match self.stack.last() {
                Some(frame) => (
                    frame.cell,
                    frame.span.as_ref().and_then(|p| p.child(cell, started)),
                    false,
                    (frame.last_child.0 == address).then_some(frame.last_child.1),
                ),
                None => (
                    NONE,
                    TraceBuf::maybe_start(cell, started),
                    true,
                    (self.last_root.0 == address).then_some(self.last_root.1),
                ),
            },
        };
        let caller_address = match self.cells.get(caller as usize) {
            Some(caller) => Arc::as_ptr(caller) as usize,
            None => 0,
        };
        let known = match cached {
            Some(known) => known,
            None => self.look_up(caller, cell, explicit.is_none()),
        };
        if self.thread == 0 {
            self.thread = NEXT_THREAD.fetch_add(1, Relaxed);
        }
        let token = self.next_token;
        self.next_token += 1;
        self.stack.push(Frame {
            token,
            cell: known.cell,
            edge: known.edge,
            span: span.clone(),
            last_child: NOT_CACHED,
        });
        Entered {
            token,
            thread: self.thread,
            caller: caller_address,
            span,
            root,
        }
    }

    /// What the thread knows of runs of `cell` under the caller in slot
    /// `caller`, kept as the last child of the current run (or the last
    /// root) when `cache`.
    #[inline]
    fn look_up(&mut self, caller: u32, cell: &Arc<TaskCell>, cache: bool) -> Known {
        let address = Arc::as_ptr(cell) as usize;
        let known = match self.known.get(&(caller, address)) {
            Some(known) => *known,
            None => self.learn(caller, cell),
        };
        if cache {
            match self.stack.last_mut() {
                Some(frame) => frame.last_child = (address, known),
                None => self.last_root = (address, known),
            }
        }
        known
    }

    /// The slot of `cell`, given one if it has none yet.
    fn slot_of(&mut self, cell: &Arc<TaskCell>) -> u32 {
        let key = (NONE, Arc::as_ptr(cell) as usize);
        if let Some(known) = self.known.get(&key) {
            return known.cell;
        }
        let slot = self.cells.len() as u32;
        self.cells.push(Arc::clone(cell));
        self.known.insert(
            key,
            Known {
                cell: slot,
                edge: NONE,
            },
        );
        slot
    }

    /// The first run of `cell` under the caller in slot `caller` on this
    /// thread: pins both, finds (or makes) their edge.
    #[cold]
    #[inline(never)]
    fn learn(&mut self, caller: u32, cell: &Arc<TaskCell>) -> Known {
        let caller = (caller != NONE).then(|| Arc::clone(&self.cells[caller as usize]));
        if self.known.len() >= KNOWN_LIMIT {
            self.forget();
        }
        let callee = self.slot_of(cell);
        let Some(caller) = caller else {
            return Known {
                cell: callee,
                edge: NONE,
            };
        };
        let caller_slot = self.slot_of(&caller);
        let known = Known {
            cell: callee,
            edge: self.edges.len() as u32,
        };
        self.edges.push(cell.edges().get(cell, &caller));
        self.known
            .insert((caller_slot, Arc::as_ptr(cell) as usize), known);
        known
    }

    /// Forgets every cell and edge but those the stack's frames use, which
    /// get new slots.
    #[cold]
    fn forget(&mut self) {
        let cells = std::mem::take(&mut self.cells);
        let edges = std::mem::take(&mut self.edges);
        self.known.clear();
        self.last_root = NOT_CACHED;
        for at in 0..self.stack.len() {
            let frame = &self.stack[at];
            let (cell, edge) = (frame.cell as usize, frame.edge as usize);
            let slot = self.slot_of(&cells[cell]);
            let edge_slot = match edges.get(edge) {
                Some(edge) => {
                    self.edges.push(Arc::clone(edge));
                    (self.edges.len() - 1) as u32
                }
                None => NONE,
            };
            let frame = &mut self.stack[at];
            frame.cell = slot;
            frame.edge = edge_slot;
            frame.last_child = NOT_CACHED;
        }
    }

    /// Removes the frame of `entered` and counts its edge, if it has one:
    /// whether it had; `None` if the frame is not on this thread's stack.
    #[inline]
    fn leave(&mut self, entered: &Entered, outcome: Outcome) -> Option<bool> {
        if entered.thread != self.thread {
            return None;
        }
        let frame = match self.stack.last() {
            Some(top) if top.token == entered.token => self.stack.pop(),
            // Guards dropped out of order are found further down.
            _ => match self.stack.iter().rposition(|f| f.token == entered.token) {
                Some(at) => Some(self.stack.remove(at)),
                None => None,
            },
        };
        let frame = frame?;
        Some(match self.edges.get(frame.edge as usize) {
            Some(edge) => {
                edge.count(outcome);
                true
            }
            None => false,
        })
    }
}

impl Entered {
    fn none() -> Entered {
        Entered {
            token: 0,
            thread: 0,
            caller: 0,
            span: None,
            root: false,
        }
    }

    /// The run's place, as a parent for work elsewhere.
    pub(crate) fn parent(&self, cell: &Arc<TaskCell>) -> SpanParent {
        SpanParent {
            cell: Arc::clone(cell),
            span: self.span.clone(),
        }
    }

    /// Leaves the run of `callee` (its frame off the stack) and counts it
    /// on its call edge; false if it has none (a root run, or no thread
    /// stack when it started), so the caller counts it on the task.
    #[inline]
    pub(crate) fn leave(&self, callee: &TaskCell, outcome: Outcome) -> bool {
        let here = match self.token {
            0 => None,
            _ => LOCAL
                .try_with(|local| {
                    let mut local = local.try_borrow_mut().ok()?;
                    local.leave(self, outcome)
                })
                .ok()
                .flatten(),
        };
        match here {
            Some(counted) => counted,
            None => self.caller != 0 && callee.edges().count_from(self.caller, outcome),
        }
    }

    /// Ends the run's span, and its trace if it is a root.
    #[inline]
    pub(crate) fn end(self, outcome: Outcome, ended: clock::Instant) {
        if let Some(span) = &self.span {
            span.end(outcome, ended);
            if self.root {
                span.finish_trace();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KNOWN_LIMIT;
    use crate::{Registry, SpanParent, Value};

    #[test]
    fn deep_nesting_survives_the_thread_forgetting_what_it_knows() {
        let r = Registry::new();
        let root = r.task("root");
        let tasks: Vec<_> = (0..KNOWN_LIMIT + 100)
            .map(|i| r.task(&format!("t{i}")))
            .collect();
        let top = root.start();
        let mut chain: Vec<_> = tasks[..200].iter().map(|t| t.start()).collect();
        // Each a child of t199, with 201 runs current: the lookup table
        // fills and is emptied (twice) under them.
        for t in &tasks[200..] {
            let _ = t.run(|| Ok::<_, ()>(()));
            let _ = t.run(|| Err::<(), _>(()));
        }
        while let Some(guard) = chain.pop() {
            guard.success();
        }
        assert_eq!(SpanParent::current().unwrap().task_name(), "root");
        top.success();
        assert!(SpanParent::current().is_none());
        let s = r.snapshot();
        let get = |name: String| s.get(&name);
        assert_eq!(
            get("t0.calls[caller=root,outcome=success]".into()),
            Some(Value::Int(1))
        );
        for i in 1..200 {
            let edge = format!("t{i}.calls[caller=t{},outcome=success]", i - 1);
            assert_eq!(s.get(&edge), Some(Value::Int(1)), "{edge}");
        }
        for i in 200..tasks.len() {
            for outcome in ["success", "error"] {
                let edge = format!("t{i}.calls[caller=t199,outcome={outcome}]");
                assert_eq!(s.get(&edge), Some(Value::Int(1)), "{edge}");
            }
            assert_eq!(get(format!("t{i}.errors")), Some(Value::Int(1)));
        }
        assert_eq!(get("root.success".into()), Some(Value::Int(1)));
    }

    #[test]
    fn a_guard_ended_on_another_thread_counts_its_edge_and_leaves_that_threads_stack_alone() {
        let r = Registry::new();
        let (a, b, x, y) = (r.task("a"), r.task("b"), r.task("x"), r.task("y"));
        std::thread::scope(|s| {
            // Fresh threads number their runs alike: b's run and y's run
            // get the same number on their own threads.
            let moved = s
                .spawn(|| {
                    let outer = a.start();
                    let inner = b.start();
                    outer.success();
                    inner
                })
                .join()
                .unwrap();
            s.spawn(|| {
                let gx = x.start();
                let gy = y.start();
                moved.success();
                assert_eq!(SpanParent::current().unwrap().task_name(), "y");
                gy.success();
                assert_eq!(SpanParent::current().unwrap().task_name(), "x");
                gx.success();
                assert!(SpanParent::current().is_none());
            })
            .join()
            .unwrap();
        });
        let s = r.snapshot();
        assert_eq!(
            s.get("b.calls[caller=a,outcome=success]"),
            Some(Value::Int(1))
        );
        assert_eq!(
            s.get("y.calls[caller=x,outcome=success]"),
            Some(Value::Int(1))
        );
        for task in [&a, &b, &x, &y] {
            assert_eq!(task.outcomes().success, 1, "{}", task.name());
        }
        assert_eq!(s.get("b.success"), Some(Value::Int(1)));
    }

    #[test]
    fn outcome_totals_add_runs_with_and_without_an_edge() {
        let r = Registry::new();
        let (a, b) = (r.task("a"), r.task("b[k=v]"));
        let _ = b.run(|| Err::<(), _>(()));
        let _ = a.run(|| {
            let _ = b.run(|| Err::<(), _>(()));
            b.run(|| Ok::<_, ()>(()))
        });
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.run(|| b.run(|| -> Result<(), ()> { panic!("boom") }))
        }));
        assert!(unwound.is_err());
        let guard = a.start();
        let parent = guard.parent();
        drop(guard);
        let _ = b.run_in(&parent, || Err::<(), _>(()));
        b.record_finished(
            std::time::Duration::from_millis(1),
            crate::Outcome::Error,
            Some(&a),
        );
        b.record_finished(
            std::time::Duration::from_millis(1),
            crate::Outcome::Error,
            None,
        );
        let s = r.snapshot();
        assert_eq!(s.get("b.errors[k=v]"), Some(Value::Int(5)));
        assert_eq!(s.get("b.success[k=v]"), Some(Value::Int(1)));
        assert_eq!(s.get("b.panics[k=v]"), Some(Value::Int(1)));
        assert_eq!(
            s.get("b.calls[k=v,caller=a,outcome=error]"),
            Some(Value::Int(3))
        );
        assert_eq!(b.outcomes().errors, 5);
        assert_eq!(b.durations(crate::Outcome::Error).distribution().count, 5);
    }
}
