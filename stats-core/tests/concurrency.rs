//! Many threads recording into the same stats lose nothing: handles, by-name
//! calls, floats and gauges, including threads that exit mid-way.

use std::cell::RefCell;
use std::sync::{Arc, Barrier};
use std::thread;

use stats_core::{Kind, Registry, Value};

const THREADS: usize = 8;
const PER_THREAD: usize = 20_000;

/// Runs `work(thread_index)` on [`THREADS`] threads released together.
fn on_threads(work: impl Fn(usize) + Sync) {
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (barrier, work) = (&barrier, &work);
            s.spawn(move || {
                barrier.wait();
                work(t);
            });
        }
    });
}

#[test]
fn counter_handle_sums_exactly() {
    let registry = Registry::new();
    let requests = registry.counter("http.requests[method=GET]");
    on_threads(|t| {
        let requests = requests.clone();
        for i in 0..PER_THREAD {
            if i % 2 == 0 {
                requests.incr();
            } else {
                requests.incr_by(t as u64 + 1);
            }
        }
    });
    let half = (PER_THREAD / 2) as i64;
    let want: i64 = (1..=THREADS as i64).map(|by| half + half * by).sum();
    assert_eq!(requests.value(), Value::Int(want));
    assert_eq!(
        registry.get("http.requests[method=GET]"),
        Some(Value::Int(want))
    );
    assert_eq!(
        registry.kind("http.requests[method=GET]"),
        Some(Kind::Counter)
    );
}

#[test]
fn by_name_sums_exactly_across_names_and_threads() {
    let registry = Registry::new();
    on_threads(|t| {
        for i in 0..PER_THREAD {
            registry.incr("shared total", 1);
            registry.incr(&format!("per thread {t}"), 2);
            // A name that only sanitises to the shared one must land there too.
            if i % 100 == 0 {
                registry.incr("  shared total ", 1);
            }
        }
    });
    let extra = PER_THREAD.div_ceil(100);
    assert_eq!(
        registry.get("shared total"),
        Some(Value::Int(((PER_THREAD + extra) * THREADS) as i64))
    );
    for t in 0..THREADS {
        assert_eq!(
            registry.get(&format!("per thread {t}")),
            Some(Value::Int(2 * PER_THREAD as i64))
        );
    }
    assert_eq!(registry.len(), THREADS + 1);
}

#[test]
fn mixed_int_and_float_increments_sum_exactly() {
    let registry = Registry::new();
    let bytes = registry.counter("bytes");
    on_threads(|t| {
        for i in 0..PER_THREAD {
            match (t + i) % 3 {
                0 => bytes.incr_by(4),
                // Quarters are exact in binary, and every partial sum stays
                // far below 2^53, so float addition here is exact too.
                1 => bytes.incr_by_float(0.25),
                _ => registry.incr("bytes", 2.5),
            }
        }
    });
    let mut want = 0.0;
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            want += [4.0, 0.25, 2.5][(t + i) % 3];
        }
    }
    assert_eq!(bytes.value(), Value::Float(want));
    assert_eq!(registry.kind("bytes"), Some(Kind::Counter));
}

#[test]
fn gauge_adds_from_threads_sum_exactly_and_sets_land_whole() {
    let registry = Registry::new();
    let depth = registry.gauge("queue depth");
    on_threads(|t| {
        for i in 0..PER_THREAD {
            // Up and down in equal measure per thread, except a last +t.
            depth.add(if i % 2 == 0 { 3 } else { -3 });
            registry.incr("queue depth", if i % 2 == 0 { -1 } else { 1 });
        }
        depth.add(t as i64);
    });
    let want: i64 = (0..THREADS as i64).sum();
    assert_eq!(depth.value(), Value::Int(want));
    assert_eq!(registry.kind("queue depth"), Some(Kind::Gauge));

    // Concurrent sets: the final value is one of the values set, never a
    // mix of two.
    let level = registry.gauge("level");
    on_threads(|t| {
        for i in 0..PER_THREAD {
            level.set((t * PER_THREAD + i) as i64);
        }
    });
    let last_values: Vec<Value> = (0..THREADS)
        .map(|t| Value::Int((t * PER_THREAD + PER_THREAD - 1) as i64))
        .collect();
    let got = level.value();
    assert!(
        last_values.contains(&got),
        "{got:?} is not any thread's last set"
    );
}

#[test]
fn threads_that_exit_while_others_record_lose_nothing() {
    let registry = Arc::new(Registry::new());
    let hits = registry.counter("hits");
    let rounds = 50;
    let short_lived = 4;
    let steady = 2;
    let all_started = Arc::new(Barrier::new(steady + 1));

    let steady_threads: Vec<_> = (0..steady)
        .map(|_| {
            let (registry, hits, all_started) = (
                Arc::clone(&registry),
                hits.clone(),
                Arc::clone(&all_started),
            );
            thread::spawn(move || {
                all_started.wait();
                for _ in 0..rounds * 1_000 {
                    hits.incr();
                    registry.incr("hits", 1);
                }
            })
        })
        .collect();
    all_started.wait();
    // Threads come and go while the steady ones record: each exit runs the
    // thread-local teardown (stripe lease, name cache) under load.
    for _ in 0..rounds {
        let batch: Vec<_> = (0..short_lived)
            .map(|_| {
                let (registry, hits) = (Arc::clone(&registry), hits.clone());
                thread::spawn(move || {
                    for _ in 0..100 {
                        hits.incr();
                        registry.incr("hits", 1);
                        registry.incr("hits", 0.5);
                    }
                })
            })
            .collect();
        for thread in batch {
            thread.join().expect("short-lived thread panicked");
        }
    }
    for thread in steady_threads {
        thread.join().expect("steady thread panicked");
    }
    let want = (steady * rounds * 1_000 * 2) as f64 + (rounds * short_lived * 100) as f64 * 2.5;
    assert_eq!(registry.get("hits"), Some(Value::Float(want)));
}

thread_local! {
    static RECORD_ON_EXIT: RecordOnExit = const { RecordOnExit(RefCell::new(None)) };
}

/// Records from a thread-local destructor, when the registry's own
/// thread-locals may already be gone.
struct RecordOnExit(RefCell<Option<Arc<Registry>>>);

impl Drop for RecordOnExit {
    fn drop(&mut self) {
        if let Some(registry) = self.0.get_mut() {
            registry.incr("recorded at exit", 1);
            registry.counter("recorded at exit").incr();
        }
    }
}

#[test]
fn recording_from_a_thread_local_destructor_counts() {
    let registry = Arc::new(Registry::new());
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let registry = Arc::clone(&registry);
            thread::spawn(move || {
                // Thread-local destructors run in an unspecified order, so
                // half the threads set their hook up before the registry's
                // thread-locals exist and half after.
                let hook =
                    |registry| RECORD_ON_EXIT.with(|slot| *slot.0.borrow_mut() = Some(registry));
                if t % 2 == 0 {
                    hook(Arc::clone(&registry));
                    registry.incr("recorded at exit", 1);
                } else {
                    registry.incr("recorded at exit", 1);
                    hook(Arc::clone(&registry));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread panicked");
    }
    assert_eq!(
        registry.get("recorded at exit"),
        Some(Value::Int(3 * THREADS as i64))
    );
}
