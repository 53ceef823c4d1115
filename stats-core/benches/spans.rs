//! What spans cost (issue 16), side by side in one run: a plain task run
//! (a root, nothing current on the thread, sampling off), the same run
//! nested under a current run (edge counting), nested under a captured
//! trace (edge counting and a span), and a root run that starts a trace.
//!
//! The traced-child case starts a fresh root every [`CHILDREN_PER_TRACE`]
//! children (within the default span limit, so every child is really
//! captured); the root's cost is spread over its children and included.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use criterion::{Criterion, criterion_group, criterion_main};
use stats_core::Registry;

const CHILDREN_PER_TRACE: u64 = 64;

fn spans(c: &mut Criterion) {
    let mut group = c.benchmark_group("span");
    let registry = Registry::new();
    let (root, child) = (registry.task("request"), registry.task("db.query"));
    let ok = || Ok::<u32, ()>(black_box(1));

    registry.tracer().set_sample_every(0);
    group.bench_function("plain_task_run", |b| {
        b.iter(|| black_box(child.run(ok)));
    });
    group.bench_function("nested_run/edges", |b| {
        let parent = root.start();
        b.iter(|| black_box(child.run(ok)));
        parent.success();
    });
    registry.tracer().set_sample_every(1);
    group.bench_function("nested_run/edges+trace", |b| {
        b.iter_custom(|iters| {
            let started = std::time::Instant::now();
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHILDREN_PER_TRACE);
                let parent = root.start();
                for _ in 0..n {
                    let _ = black_box(child.run(ok));
                }
                parent.success();
                left -= n;
            }
            started.elapsed()
        });
    });
    group.bench_function("root_run/trace", |b| {
        b.iter(|| black_box(root.run(ok)));
    });
    group.finish();
}

/// The floor under a timed run with an edge, as the run does it: two clock
/// reads (its start and end) and the five atomic adds no run can skip
/// (running count up and down, duration bucket, duration sum, edge or
/// outcome counter), each on a cache line of its own as in the real cells.
fn floor(c: &mut Criterion) {
    #[repr(align(128))]
    struct Line(AtomicU64);
    let mut group = c.benchmark_group("floor");
    let clock = quanta::Clock::new();
    group.bench_function("two_clock_reads", |b| {
        b.iter(|| black_box(clock.raw()).wrapping_add(black_box(clock.raw())));
    });
    let lines: Vec<Line> = (0..5).map(|_| Line(AtomicU64::new(0))).collect();
    group.bench_function("five_atomic_adds", |b| {
        b.iter(|| {
            for line in black_box(&lines) {
                line.0.fetch_add(1, Relaxed);
            }
        });
    });
    group.bench_function("timed_run", |b| {
        b.iter(|| {
            let start = black_box(clock.raw());
            for line in black_box(&lines) {
                line.0.fetch_add(1, Relaxed);
            }
            black_box(clock.raw()).wrapping_sub(start)
        });
    });
    group.finish();
}

criterion_group!(benches, spans, floor);
criterion_main!(benches);
