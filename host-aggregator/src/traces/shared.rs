//! One read of the trace FIFOs shared by every request that wants one at
//! about the same time (single flight, as for passes): without it each `/traces` request, and each poll of each
//! `/trace/next` waiter, read every FIFO and held every answer of its own,
//! so N concurrent requests held N times a read's memory and a client
//! could run the aggregator out of memory.
//!
//! A request takes the latest read if it ended recently enough; else it
//! takes the read in flight when it arrived (never waiting for a second
//! one), or runs one itself. A read that failed is shared the same way.
//! Unlike a pass, a read's age counts from its end: a read of a thousand
//! full rings takes longer than the max age, so counted from its start it
//! would be stale the moment it ended, and requests arriving a few at a
//! time (the answer threads are few) would keep reads running back to
//! back, each making every writer render its ring. Also here:
//! [`Gate`], which bounds how many single-pipe reads run at once.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

/// One shared read: when it started and ended and what it gave.
#[derive(Debug)]
pub struct Shared<T> {
    /// When the read started.
    pub started: Instant,
    /// When it ended.
    pub ended: Instant,
    /// What it read (or why it could not).
    pub value: T,
}

impl<T> Shared<T> {
    /// Runs `read` and notes when it started and ended.
    pub fn read(read: impl FnOnce() -> T) -> Shared<T> {
        let started = Instant::now();
        let value = read();
        Shared {
            started,
            ended: Instant::now(),
            value,
        }
    }
}

/// At most `room` holders at once; the others wait. Bounds the memory of
/// single-pipe reads (`/traces/<pid>/<id>`, `/traces?pid=`, the full
/// record `/trace/next` answers): each may hold one answer of up to the
/// per-pipe byte cap while it is read.
#[derive(Debug)]
pub struct Gate {
    taken: Mutex<usize>,
    freed: Condvar,
    room: usize,
}

impl Gate {
    /// A gate letting `room` (at least 1) through at once.
    pub fn new(room: usize) -> Gate {
        Gate {
            taken: Mutex::new(0),
            freed: Condvar::new(),
            room: room.max(1),
        }
    }

    /// Runs `f` once there is room.
    pub fn through<R>(&self, f: impl FnOnce() -> R) -> R {
        let taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let mut taken = self
            .freed
            .wait_while(taken, |n| *n >= self.room)
            .unwrap_or_else(PoisonError::into_inner);
        *taken += 1;
        drop(taken);
        let _pass = Passing(self);
        f()
    }
}

/// Gives the room back, even if the holder panics.
struct Passing<'a>(&'a Gate);

impl Drop for Passing<'_> {
    fn drop(&mut self) {
        let mut taken = self.0.taken.lock().unwrap_or_else(PoisonError::into_inner);
        *taken -= 1;
        drop(taken);
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_gate_lets_room_through_and_no_more() {
        let gate = Arc::new(Gate::new(2));
        let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, inside, most) =
                    (Arc::clone(&gate), Arc::clone(&inside), Arc::clone(&most));
                std::thread::spawn(move || {
                    gate.through(|| {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }
}
