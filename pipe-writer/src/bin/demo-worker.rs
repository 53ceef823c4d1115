//! A small worker app that records a few stats as it runs and serves them
//! with `pipe_writer::start()`: `cat <dir>/<pid>.stats` shows them live.
//! The demo's writer (scripts/demo.sh); glue, not a library.
//!
//! ```sh
//! cargo run -p pipe-writer --features demo --bin demo-worker -- --dir /tmp/demo --seconds 30 &
//! cat /tmp/demo/*.stats
//! ```
//!
//! Stops after `--seconds` (default: never) or on SIGINT/SIGTERM, and
//! removes its FIFO either way.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};

/// A pretend job worker that publishes its stats through a FIFO.
#[derive(Parser, Debug)]
struct Args {
    /// Directory of the FIFO [default: $STATS_PIPE_DIR, else /tmp/stats-pipe]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM)
    #[arg(long)]
    seconds: Option<f64>,
    /// Milliseconds between jobs
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    /// Print the FIFO's path on stdout once it is served
    #[arg(long)]
    print_path: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Blocked before any thread starts so every thread inherits the mask and
    // the signal thread's `sigwait` receives them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_signal = Arc::clone(&stop);
    std::thread::spawn(move || {
        if signals.wait().is_ok() {
            stop_on_signal.store(true, Relaxed);
        }
    });

    // Everything recorded through stats_core's process-wide registry is
    // served; `pipe_writer::start()` alone would use the default directory.
    let mut builder = pipe_writer::Builder::new();
    if let Some(dir) = &args.dir {
        builder = builder.dir(dir);
    }
    let server = builder.start()?;
    if args.print_path {
        println!("{}", server.path().display());
    }

    // Each job is a request task with a cache lookup under it and, on a
    // miss, a db query (the call graph at /funcs, the dashboard's Calls
    // view); one request in 20 is captured as a trace (/traces, the
    // Traces view).
    let registry = stats_core::Registry::global();
    registry.tracer().set_sample_every(20);
    let request = registry.task("demo.request");
    let query = registry.task("demo.db query");
    let cache = registry.task("demo.cache");
    let jobs_done = stats_core::counter("worker.jobs done");
    let queue_depth = stats_core::gauge("worker.queue depth");
    let started = Instant::now();
    let deadline = args.seconds.map(|s| started + Duration::from_secs_f64(s));
    let mut queued: i64 = 0;
    let mut job: u64 = 0;
    while !stop.load(Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        job += 1;
        // New work arrives in bursts; one job is done per tick.
        if job % 7 == 0 {
            queued += 5;
        }
        if queued > 0 {
            queued -= 1;
            jobs_done.incr();
        }
        queue_depth.set(queued);
        let code = if job % 50 == 0 { 500 } else { 200 };
        let _ = request.run(|| {
            let hit = cache.run(|| Ok::<bool, ()>(job % 3 == 0));
            if hit != Ok(true) {
                query.run(|| {
                    std::thread::sleep(Duration::from_micros(200 + job % 7 * 100));
                    if code == 500 { Err(()) } else { Ok(()) }
                })?;
            }
            Ok::<(), ()>(())
        });
        stats_core::incr(&format!("worker.jobs[code={code}]"), 1);
        stats_core::set("worker.uptime seconds", started.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_millis(args.interval_ms));
    }
    server.stop()?;
    Ok(())
}
