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

/// How many stats [`writer_snapshot`] holds: what
/// `scripts/bench-aggregate.sh` feeds each writer.
pub const WRITER_STATS: usize = 180;

/// The bytes one of `scripts/bench-aggregate.sh`'s writers serves:
/// [`WRITER_STATS`] stats (counters, tagged counters, float gauges) with kind lines and the
/// envelope; `bump` added to every value, so writers can differ.
pub fn writer_snapshot(pid: u32, bump: usize) -> Vec<u8> {
    use stats_core::Registry;
    use stats_core::envelope::{Header, write_header, write_trailer};
    let registry = Registry::new();
    for i in 0..WRITER_STATS {
        let module = i / 3;
        match i % 3 {
            0 => registry.incr(&format!("app.module{module}.requests[code=200]"), i + bump),
            1 => registry.incr(&format!("app.module{module}.bytes_sent"), i * 1000 + bump),
            _ => registry.set(
                &format!("app.module{module}.latency_seconds"),
                (i + bump) as f64 / 8.0,
            ),
        }
    }
    let mut buf = Vec::new();
    write_header(
        &mut buf,
        &Header {
            pid,
            seq: 7,
            time: 1_700_000_000.25,
        },
    );
    registry.render_kinds_into(&mut buf);
    registry.render_into(&mut buf);
    write_trailer(&mut buf);
    buf
}
