//! One value made by one caller and shared by every caller that wants one
//! at about the same time (single flight): the passes (`pass_cache`) and
//! the reads of the trace FIFOs (`traces`). Reading every pipe costs each
//! writer a snapshot, and each read's answers take memory, so concurrent
//! requests must never cause a read each.
//!
//! A caller takes the latest value if the caller's own test says it is
//! still fresh; else it takes the value being made when it arrived; else
//! it makes one itself.
//!
//! # Never queue up
//!
//! A waiter waits for the value in flight when it arrived to *end*, and
//! then takes it, whatever has started since: it never waits for a second
//! one. Waiting "until nothing is running" instead let the history
//! recorder start pass after pass while requests waited (with one
//! writerless FIFO, each pass takes the whole deadline: `/stats` took 7.7 s
//! at the median, issue 12). So a caller waits at most for the rest of one
//! making, plus one of its own when the latest is stale and none runs. A
//! maker that panics wakes its waiters, who then wait for (or make) the
//! next one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Single-flight holder of the latest value (see the module docs).
#[derive(Debug)]
pub struct SingleFlight<T> {
    state: Mutex<State<T>>,
    done: Condvar,
}

#[derive(Debug)]
struct State<T> {
    latest: Option<Arc<T>>,
    running: bool,
    /// Values made so far.
    made: u64,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> SingleFlight<T> {
        SingleFlight {
            state: Mutex::new(State {
                latest: None,
                running: false,
                made: 0,
            }),
            done: Condvar::new(),
        }
    }
}

impl<T> SingleFlight<T> {
    /// How many values have been made.
    pub fn made(&self) -> u64 {
        self.lock().made
    }

    /// The latest value made, fresh or not (`None` before the first).
    pub fn latest(&self) -> Option<Arc<T>> {
        self.lock().latest.clone()
    }

    /// The latest value if `fresh` says so, else the one being made when
    /// this call arrived, else a new one made by `make` on this thread
    /// (`make` gets the number it will have: [`SingleFlight::made`] + 1).
    pub fn get(&self, fresh: impl Fn(&T) -> bool, make: impl FnOnce(u64) -> T) -> Arc<T> {
        let mut state = self.lock();
        if let Some(latest) = &state.latest
            && fresh(latest)
        {
            return Arc::clone(latest);
        }
        // Wait for the value in flight to end (not for the holder to be
        // idle: another may start the moment it ends). Should its maker
        // panic while another caller started one, wait for that one too.
        for _ in 0..2 {
            if !state.running {
                break;
            }
            let in_flight = state.made + 1;
            state = self
                .done
                .wait_while(state, |s| s.made < in_flight && s.running)
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(latest) = &state.latest
                && state.made >= in_flight
            {
                return Arc::clone(latest);
            }
        }
        state.running = true;
        let number = state.made + 1;
        drop(state);
        // Clears `running` even if `make` panics, so waiters wake.
        let mut running = Running {
            flight: self,
            finished: None,
        };
        let value = Arc::new(make(number));
        running.finished = Some(Arc::clone(&value));
        value
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Running<'a, T> {
    flight: &'a SingleFlight<T>,
    finished: Option<Arc<T>>,
}

impl<T> Drop for Running<'_, T> {
    fn drop(&mut self) {
        let mut state = self.flight.lock();
        if let Some(finished) = self.finished.take() {
            state.made += 1;
            state.latest = Some(finished);
        }
        state.running = false;
        drop(state);
        self.flight.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    const STALE: fn(&usize) -> bool = |_| false;

    #[test]
    fn concurrent_gets_share_one_making_and_fresh_ones_are_reused() {
        let flight = Arc::new(SingleFlight::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (flight, calls) = (Arc::clone(&flight), Arc::clone(&calls));
                std::thread::spawn(move || {
                    *flight.get(STALE, |_| {
                        std::thread::sleep(Duration::from_millis(100));
                        calls.fetch_add(1, Ordering::SeqCst)
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let runs = calls.load(Ordering::SeqCst);
        // The first makes one; the others take it or, at worst, one more.
        assert!(runs <= 2, "16 concurrent gets made {runs}");
        assert_eq!(flight.made() as usize, runs);
        let fresh = *flight.get(|_| true, |_| 99);
        assert_ne!(fresh, 99, "a fresh value was not reused");
        assert_eq!(*flight.get(STALE, |_| 99), 99);
        assert_eq!(flight.latest().as_deref(), Some(&99));
    }

    #[test]
    fn a_panicking_maker_does_not_wedge_waiters() {
        let flight = Arc::new(SingleFlight::<u64>::default());
        let panicking = Arc::clone(&flight);
        let blew = std::thread::spawn(move || {
            panicking.get(|_| false, |_| panic!("making blew up"));
        });
        assert!(blew.join().is_err());
        // The number passed on is the next one: the panic made nothing.
        assert_eq!(*flight.get(|_| false, |number| number), 1);
    }
}
