//! The harness shared by the benches: a measured loop run on two threads at
//! once, started together by a barrier, timed by the slower thread.

#![allow(dead_code)] // each bench uses a different part

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `op` `iters` times on each of two threads started together and
/// returns the slower thread's time.
pub fn on_two_threads(iters: u64, op: impl Fn() + Sync) -> Duration {
    on_two_threads_indexed(iters, |_| op())
}

/// [`on_two_threads`], telling `op` which thread (0 or 1) it runs on.
pub fn on_two_threads_indexed(iters: u64, op: impl Fn(usize) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let (barrier, op) = (&barrier, &op);
        let run = move |thread: usize| {
            barrier.wait();
            let start = Instant::now();
            for _ in 0..iters {
                op(thread);
            }
            start.elapsed()
        };
        let other = s.spawn(move || run(1));
        let mine = run(0);
        mine.max(other.join().expect("bench thread panicked"))
    })
}
