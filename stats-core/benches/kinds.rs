//! Recording into histograms and running tasks, side by side in one run with
//! the peers: prometheus-client's `Histogram::observe` and a `metrics`
//! histogram handle backed by metrics-util's `AtomicBucket` (the storage
//! metrics-exporter-prometheus uses), each with 1 and 2 threads on the same
//! histogram, beside the machine's floor (one atomic add per thread); and a task run (`Task::run` and the guard) against the bare
//! closure call. See `common` for how 2-thread cases are timed.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use common::on_two_threads;
use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use stats_core::Registry;

mod common;

/// One uncontended atomic add per thread: the machine's floor, so targets
/// set on another machine can be read as ratios.
#[repr(align(128))]
#[derive(Default)]
struct PaddedAtomic(AtomicU64);

/// Times `record(i)` for i = 1, 2, 3...: each iteration records the next
/// of the cycling sample values.
fn each_value(b: &mut Bencher, mut record: impl FnMut(usize)) {
    let mut i = 0;
    b.iter(|| {
        i += 1;
        record(i);
    });
}

fn histogram(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram");
    let floor = [PaddedAtomic::default(), PaddedAtomic::default()];
    group.bench_function("floor_raw_atomic/1_thread", |b| {
        b.iter(|| floor[0].0.fetch_add(black_box(1), Relaxed));
    });
    group.bench_function("floor_per_thread_atomic/2_threads", |b| {
        b.iter_custom(|iters| {
            common::on_two_threads_indexed(iters, |t| {
                floor[t].0.fetch_add(black_box(1), Relaxed);
            })
        });
    });
    let registry = Registry::new();
    let ours = registry.histogram("latency");
    let values: Vec<f64> = (0..1024)
        .map(|i| 0.0001 * f64::from(i * 37 % 1000 + 1))
        .collect();
    let at = |i: usize| values[i & 1023];

    group.bench_function("ours/1_thread", |b| {
        each_value(b, |i| ours.record_float(black_box(at(i))))
    });
    group.bench_function("ours_by_name/1_thread", |b| {
        each_value(b, |i| {
            registry.record(black_box("latency"), black_box(at(i)))
        })
    });
    group.bench_function("ours/2_threads", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || ours.record_float(black_box(at(iters as usize))))
        });
    });

    let prom = prometheus_client::metrics::histogram::Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 12),
    );
    group.bench_function("prometheus_client/1_thread", |b| {
        each_value(b, |i| prom.observe(black_box(at(i))))
    });
    group.bench_function("prometheus_client/2_threads", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || prom.observe(black_box(at(iters as usize))))
        });
    });

    let bucket = Arc::new(metrics_util::storage::AtomicBucket::<f64>::new());
    let metrics_handle = metrics::Histogram::from_arc(Arc::clone(&bucket));
    group.bench_function("metrics/1_thread", |b| {
        each_value(b, |i| metrics_handle.record(black_box(at(i))));
        bucket.clear();
    });
    group.bench_function("metrics/2_threads", |b| {
        b.iter_custom(|iters| {
            let took = on_two_threads(iters, || {
                metrics_handle.record(black_box(at(iters as usize)))
            });
            bucket.clear();
            took
        });
    });
    group.finish();
}

fn task(c: &mut Criterion) {
    let mut group = c.benchmark_group("task");
    let registry = Registry::new();
    let task = registry.task("job");
    let bare = || Ok::<u32, ()>(black_box(1));
    group.bench_function("bare_closure", |b| {
        b.iter(|| black_box(bare()));
    });
    group.bench_function("ours_run", |b| {
        b.iter(|| black_box(task.run(|| Ok::<u32, ()>(black_box(1)))));
    });
    group.bench_function("ours_guard", |b| {
        b.iter(|| {
            let guard = task.start();
            black_box(1);
            guard.success();
        });
    });
    group.bench_function("ours_run/2_threads", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || {
                let _ = black_box(task.run(|| Ok::<u32, ()>(black_box(1))));
            })
        });
    });
    group.finish();
}

criterion_group!(benches, histogram, task);
criterion_main!(benches);
