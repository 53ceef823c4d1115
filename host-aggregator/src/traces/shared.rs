//! One read of the trace FIFOs shared by every request that wants one at
//! about the same time (single flight), as `pass_cache` does for
//! passes: without it each `/traces` request, and each poll of each
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

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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

/// Single-flight holder of the latest read (see the module docs).
#[derive(Debug)]
pub struct SingleFlight<T> {
    state: Mutex<State<T>>,
    done: Condvar,
}

#[derive(Debug)]
struct State<T> {
    latest: Option<Arc<Shared<T>>>,
    running: bool,
    /// Reads ended so far.
    ended: u64,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> SingleFlight<T> {
        SingleFlight {
            state: Mutex::new(State {
                latest: None,
                running: false,
                ended: 0,
            }),
            done: Condvar::new(),
        }
    }
}

impl<T> SingleFlight<T> {
    /// How many reads have ended.
    pub fn reads(&self) -> u64 {
        self.lock().ended
    }

    /// The latest read if it ended at most `max_age` ago, else the read
    /// in flight, else a new one made by `read` on this thread.
    pub fn get(&self, max_age: Duration, read: impl FnOnce() -> T) -> Arc<Shared<T>> {
        let mut state = self.lock();
        if let Some(latest) = &state.latest
            && latest.ended.elapsed() <= max_age
        {
            return Arc::clone(latest);
        }
        // Wait for the read in flight to end (not for the holder to be
        // idle: another read may start the moment it ends). Should it
        // panic while another caller started one, wait for that one too.
        for _ in 0..2 {
            if !state.running {
                break;
            }
            let in_flight = state.ended + 1;
            state = self
                .done
                .wait_while(state, |s| s.ended < in_flight && s.running)
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(latest) = &state.latest
                && state.ended >= in_flight
            {
                return Arc::clone(latest);
            }
        }
        state.running = true;
        drop(state);
        // Clears `running` even if `read` panics, so waiters wake.
        let mut running = Running {
            flight: self,
            finished: None,
        };
        let started = Instant::now();
        let value = read();
        let shared = Arc::new(Shared {
            started,
            ended: Instant::now(),
            value,
        });
        running.finished = Some(Arc::clone(&shared));
        shared
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Running<'a, T> {
    flight: &'a SingleFlight<T>,
    finished: Option<Arc<Shared<T>>>,
}

impl<T> Drop for Running<'_, T> {
    fn drop(&mut self) {
        let mut state = self.flight.lock();
        if let Some(finished) = self.finished.take() {
            state.ended += 1;
            state.latest = Some(finished);
        }
        state.running = false;
        drop(state);
        self.flight.done.notify_all();
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn concurrent_gets_share_reads_and_young_ones_are_reused() {
        let flight = Arc::new(SingleFlight::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (flight, calls) = (Arc::clone(&flight), Arc::clone(&calls));
                std::thread::spawn(move || {
                    flight
                        .get(Duration::ZERO, || {
                            std::thread::sleep(Duration::from_millis(100));
                            calls.fetch_add(1, Ordering::SeqCst)
                        })
                        .value
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let runs = calls.load(Ordering::SeqCst);
        // The first runs one; the others take it or, at worst, one more.
        assert!(runs <= 2, "16 concurrent gets ran {runs} reads");
        assert_eq!(flight.reads() as usize, runs);
        let young = flight.get(Duration::from_secs(60), || 99).value;
        assert_ne!(young, 99, "a young read was not reused");
        assert_eq!(flight.get(Duration::ZERO, || 99).value, 99);
    }

    #[test]
    fn a_panicking_read_does_not_wedge_waiters() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let panicking = Arc::clone(&flight);
        let blew = std::thread::spawn(move || {
            panicking.get(Duration::ZERO, || panic!("read blew up"));
        });
        assert!(blew.join().is_err());
        assert_eq!(flight.get(Duration::ZERO, || 7).value, 7);
    }

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
