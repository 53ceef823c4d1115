//! Recording cost: our counter handle and by-name `incr`, side by side in one
//! run with a raw `AtomicU64::fetch_add`, the `metrics` crate (cached handle
//! and by-name `counter!`, behind a real atomic-backed recorder) and a naive
//! `RwLock<HashMap<String, AtomicU64>>` by name; each with 1 and 2 threads.
//!
//! A 2-thread case runs the measured loop on two threads at once, started
//! together by a barrier, and reports the slower thread's time divided by
//! the iterations: the cost of one call while another thread records the
//! same stat.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use common::{on_two_threads, on_two_threads_indexed};
use criterion::{Criterion, criterion_group, criterion_main};
use metrics::{Key, KeyName, Metadata, SharedString, Unit};
use stats_core::Registry;

mod common;

const NAME: &str = "http.requests.total";

#[derive(Default)]
#[repr(align(128))]
struct PaddedAtomic(AtomicU64);

/// A minimal `metrics` recorder that does the real work a recorder must do:
/// find the counter for a key (read-locked map, atomic-backed handles) and
/// hand out a handle to it.
#[derive(Default)]
struct AtomicRecorder {
    counters: RwLock<HashMap<Key, Arc<AtomicU64>>>,
}

impl metrics::Recorder for AtomicRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        if let Some(counter) = self.counters.read().expect("lock").get(key) {
            return metrics::Counter::from_arc(Arc::clone(counter));
        }
        let mut counters = self.counters.write().expect("lock");
        let counter = counters.entry(key.clone()).or_default();
        metrics::Counter::from_arc(Arc::clone(counter))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

fn record(c: &mut Criterion) {
    metrics::set_global_recorder(AtomicRecorder::default())
        .unwrap_or_else(|_| panic!("a metrics recorder was already installed"));

    let mut group = c.benchmark_group("record");

    let raw = AtomicU64::new(0);
    group.bench_function("raw_atomic/1_thread", |b| {
        b.iter(|| black_box(&raw).fetch_add(1, Relaxed))
    });
    group.bench_function("raw_atomic/2_threads", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || {
                black_box(&raw).fetch_add(1, Relaxed);
            })
        })
    });

    // The floor for any striped design: each thread adds to its own atomic
    // on its own cache line (the "per-thread shard").
    let shards = [PaddedAtomic::default(), PaddedAtomic::default()];
    group.bench_function("per_thread_atomic/2_threads", |b| {
        b.iter_custom(|iters| {
            on_two_threads_indexed(iters, |thread| {
                black_box(&shards[thread].0).fetch_add(1, Relaxed);
            })
        })
    });

    let registry = Registry::new();
    let counter = registry.counter(NAME);
    group.bench_function("counter_handle/1_thread", |b| {
        b.iter(|| black_box(&counter).incr())
    });
    group.bench_function("counter_handle/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, || black_box(&counter).incr()))
    });
    group.bench_function("by_name/1_thread", |b| {
        b.iter(|| registry.incr(black_box(NAME), 1))
    });
    group.bench_function("by_name/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, || registry.incr(black_box(NAME), 1)))
    });

    let metrics_counter = metrics::counter!(NAME);
    group.bench_function("metrics_handle/1_thread", |b| {
        b.iter(|| black_box(&metrics_counter).increment(1))
    });
    group.bench_function("metrics_handle/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, || black_box(&metrics_counter).increment(1)))
    });
    group.bench_function("metrics_by_name/1_thread", |b| {
        b.iter(|| metrics::counter!(NAME).increment(1))
    });
    group.bench_function("metrics_by_name/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, || metrics::counter!(NAME).increment(1)))
    });

    let naive: RwLock<HashMap<String, AtomicU64>> =
        RwLock::new(HashMap::from([(NAME.to_owned(), AtomicU64::new(0))]));
    let naive_incr = || {
        let map = naive.read().expect("lock");
        if let Some(stat) = map.get(black_box(NAME)) {
            stat.fetch_add(1, Relaxed);
        }
    };
    group.bench_function("rwlock_hashmap_by_name/1_thread", |b| b.iter(naive_incr));
    group.bench_function("rwlock_hashmap_by_name/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, naive_incr))
    });

    group.finish();

    // The counts are checked so no loop can have been optimised away.
    assert!(raw.load(Relaxed) > 0);
    assert!(matches!(counter.value(), stats_core::Value::Int(n) if n > 0));
}

criterion_group!(benches, record);
criterion_main!(benches);
