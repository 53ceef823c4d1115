//! A test program with nested tasks for the call-graph and trace tests
//! (issue 16): serves its registry through pipe-writer in `--dir DIR`,
//! tracing every root run, and runs requests on stdin's command:
//!
//! - `run N`: N requests, one after the other. Request `n` (counted from 1
//!   over the process's life) runs task `request`, which calls `db.query`
//!   (2 ms), which calls `cache` (1 ms). `db.query` fails when `n` is a
//!   multiple of 3 (and so does `request`); `cache` panics when `n` is a
//!   multiple of 4 (`db.query` catches it). For each request it prints its
//!   own measurements, one JSON line
//!   `{"n":N,"spans":[["request",OFFSET_NS,DURATION_NS],["db.query",..],["cache",..]]}`
//!   (offsets from the start of `request`'s body, taken around each call), then
//!   `done` after the last;
//! - `exit` (or end of input) stops serving and exits 0.
//!
//! Prints `serving <path>` once the FIFOs are up.
#![forbid(unsafe_code)]

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use stats_core::Registry;
use stats_pipe_tests::writer_program::{Step, serve_commands};

fn main() {
    let mut n = 0u64;
    serve_commands(
        "traced_app",
        |registry| registry.tracer().set_sample_every(1),
        |registry, line, out| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let ["run", count] = words.as_slice() else {
                return Step::Answer(Err(format!("unknown command {line:?}")));
            };
            let Ok(count) = count.parse::<u64>() else {
                return Step::Answer(Err(format!("not a count: {count:?}")));
            };
            for _ in 0..count {
                n += 1;
                let _ = writeln!(out, "{}", request(registry, n));
            }
            let _ = writeln!(out, "done");
            Step::Printed
        },
    );
}

/// Runs request `n` and returns its measurements as a JSON line.
fn request(registry: &Registry, n: u64) -> String {
    let (request, query, cache) = (
        registry.task("request"),
        registry.task("db.query"),
        registry.task("cache"),
    );
    let mut db_span = (0, 0);
    let mut cache_span = (0, 0);
    let mut total = 0;
    // Taken inside the root run: its start (the first run of a process
    // also sets up the clock and the thread's span stack before it).
    let mut t0 = Instant::now();
    let _ = request.run(|| {
        t0 = Instant::now();
        let before = t0.elapsed();
        let result = query.run(|| {
            std::thread::sleep(Duration::from_millis(2));
            let before = t0.elapsed();
            let _ = catch_unwind(AssertUnwindSafe(|| {
                cache.run(|| {
                    std::thread::sleep(Duration::from_millis(1));
                    if n % 4 == 0 {
                        panic!("cache panics in request {n}");
                    }
                    Ok::<(), ()>(())
                })
            }));
            cache_span = (before.as_nanos(), (t0.elapsed() - before).as_nanos());
            if n % 3 == 0 { Err("db error") } else { Ok(()) }
        });
        db_span = (before.as_nanos(), (t0.elapsed() - before).as_nanos());
        // Taken as the closure ends, where the span's end is stamped: after
        // `run` returns, the root's trace has also been captured, which a
        // loaded machine can stretch by milliseconds (seen: 3.3 ms traced
        // against 7.4 ms measured there).
        total = t0.elapsed().as_nanos();
        result
    });
    format!(
        "{{\"n\":{n},\"spans\":[[\"request\",0,{total}],[\"db.query\",{},{}],[\"cache\",{},{}]]}}",
        db_span.0, db_span.1, cache_span.0, cache_span.1
    )
}
