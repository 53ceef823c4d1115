//! Fork awareness: which process's state is ours, and the gate that keeps
//! a `fork` from copying half-done work into the child.
//!
//! A child made by `fork` (gunicorn's workers, `multiprocessing`'s fork
//! start method) is a copy of its parent's memory with one thread. The
//! parent's registry, its `Server` and any lock another thread held are in
//! the copy, but the serving threads are not. So every piece of state that
//! belongs to one process is kept in a [`PerProcess`] chain: one link per
//! process in the line of forks, never freed. The child never touches its
//! parent's link (a lock held in it at the fork would stay held forever,
//! and dropping its `Server` would remove the parent's FIFOs); it appends
//! its own on first use.
//!
//! A process is told apart from its ancestors by its *epoch*: the number of
//! forks between it and the process that first loaded us, bumped by the
//! `pthread_atfork` child handler. Unlike the PID it cannot be recycled
//! within one line of memory: a grandchild that gets its grandparent's PID
//! still has a higher epoch.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Forks in progress (high half) and holders of the gate (low half).
static GATE: AtomicUsize = AtomicUsize::new(0);
const FORKING: usize = 1 << (usize::BITS / 2);
const HOLDERS: usize = FORKING - 1;

/// This process's epoch (see the module doc).
#[inline]
pub fn epoch() -> u64 {
    EPOCH.load(Relaxed)
}

/// A link of state of one process, and the link of its first child that
/// used it. Links are leaked: a child must not drop its parent's.
pub struct PerProcess<T: 'static> {
    epoch: u64,
    value: T,
    next: OnceLock<&'static PerProcess<T>>,
}

impl<T: Send + Sync + 'static> PerProcess<T> {
    /// A chain whose first link belongs to this process.
    pub fn leak(value: T) -> &'static PerProcess<T> {
        Box::leak(Box::new(PerProcess {
            epoch: epoch(),
            value,
            next: OnceLock::new(),
        }))
    }

    /// This process's value: the last link if it is ours, else a new link
    /// made by `make` from the last link's value (in a child, on first
    /// use). Lock-free when the last link is ours.
    #[inline]
    pub fn get(&'static self, make: impl FnOnce(&T) -> T) -> &'static T {
        let epoch = epoch();
        let mut at = self;
        while let Some(next) = at.next.get() {
            at = next;
        }
        if at.epoch == epoch {
            return &at.value;
        }
        self.append(at, make)
    }

    /// The link of this process's parent (the link before ours, if any).
    pub(crate) fn last_before(&'static self, epoch: u64) -> Option<&'static T> {
        let mut at = self;
        let mut found = None;
        loop {
            if at.epoch < epoch {
                found = Some(&at.value);
            }
            match at.next.get() {
                Some(next) => at = next,
                None => return found,
            }
        }
    }

    #[cold]
    fn append(
        &'static self,
        last: &'static PerProcess<T>,
        make: impl FnOnce(&T) -> T,
    ) -> &'static T {
        // A fork while another thread initialises `next` would leave the
        // grandchild a cell stuck "in progress": the gate holds forks off.
        let _gate = Gate::enter();
        &last
            .next
            .get_or_init(|| PerProcess::leak(make(&last.value)))
            .value
    }
}

/// Held while work runs that a fork must not split: making a link,
/// starting or stopping a server (pipe-writer's claim list is locked
/// then). A fork waits for the holders to leave; nobody enters while a
/// fork is being prepared. The child starts with the gate open.
pub(crate) struct Gate(());

impl Gate {
    /// Waits until no fork is being prepared, then enters.
    pub(crate) fn enter() -> Gate {
        loop {
            let now = GATE.load(SeqCst);
            if now & !HOLDERS == 0
                && GATE
                    .compare_exchange_weak(now, now + 1, SeqCst, SeqCst)
                    .is_ok()
            {
                return Gate(());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        GATE.fetch_sub(1, SeqCst);
    }
}

/// `pthread_atfork` prepare handler: shut the gate and wait for holders
/// (a thread that holds the gate never forks: nothing inside it calls
/// user code).
pub(crate) fn before_fork() {
    GATE.fetch_add(FORKING, SeqCst);
    while GATE.load(SeqCst) & HOLDERS != 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// `pthread_atfork` parent handler: open the gate again.
pub(crate) fn after_fork_parent() {
    GATE.fetch_sub(FORKING, SeqCst);
}

/// `pthread_atfork` child handler: a new epoch, an open gate (the holders
/// and other forkers were threads the child does not have). Only atomics;
/// the runtime then drops what the child inherited (see
/// [`crate::runtime`]).
pub(crate) fn after_fork_child() -> u64 {
    GATE.store(0, SeqCst);
    EPOCH.fetch_add(1, SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_epoch_gets_a_new_link_and_keeps_the_old() {
        let chain = PerProcess::leak(1);
        assert_eq!(*chain.get(|p| p + 1), 1);
        let before = after_fork_child();
        assert_eq!(*chain.get(|p| p + 1), 2, "a child gets its own value");
        assert_eq!(chain.last_before(before + 1), Some(&1));
        assert_eq!(*chain.get(|p| p + 2), 2, "made once per process");
        // Gate still usable after the reset.
        drop(Gate::enter());
        before_fork();
        after_fork_parent();
        drop(Gate::enter());
    }
}
