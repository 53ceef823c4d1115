//! The main thread's inbox: events from the stdin, signal and directory
//! watch threads, waited for with or without a timeout. A mutex and a
//! condition variable rather than a channel: crossbeam's blocking receive
//! spins and calls `sched_yield` a few times before it sleeps, every time,
//! which a thousand writers that check their path once a second (those
//! past the per-user inotify limit) paid as ~8 context switches a second
//! each (issue 15, a lighter writer).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Events waiting for the main thread; clone it to send from a thread.
#[derive(Debug)]
pub struct Inbox<T>(Arc<(Mutex<VecDeque<T>>, Condvar)>);

impl<T> Clone for Inbox<T> {
    fn clone(&self) -> Inbox<T> {
        Inbox(Arc::clone(&self.0))
    }
}

impl<T> Inbox<T> {
    pub fn new() -> Inbox<T> {
        Inbox(Arc::new((Mutex::new(VecDeque::new()), Condvar::new())))
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an event and wakes the main thread.
    pub fn send(&self, event: T) {
        self.queue().push_back(event);
        self.0.1.notify_one();
    }

    /// The next event, waiting as long as it takes.
    pub fn recv(&self) -> T {
        let mut queue = self.queue();
        loop {
            if let Some(event) = queue.pop_front() {
                return event;
            }
            queue = self.0.1.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The next event, or `None` once `timeout` has passed without one.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<T> {
        let end = Instant::now() + timeout;
        let mut queue = self.queue();
        loop {
            if let Some(event) = queue.pop_front() {
                return Some(event);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            queue = self
                .0
                .1
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<T> {
        self.queue().pop_front()
    }
}
