//! Rendering 10,000 stats as `name: value` lines: a `Snapshot` and a live
//! `Registry`, side by side in one run with a naive `writeln!`-per-line render
//! of the same snapshot. And a writer's render as a read pass meets it: one
//! of 1,000 registries of 180 stats each, in turn, so that each render finds
//! its registry out of the caches, as a writer woken once a second does.

use std::hint::black_box;
use std::io::Write;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use stats_core::{Registry, Snapshot, Value};

const STATS: usize = 10_000;

/// A registry shaped like a busy service: tagged and plain names, counters
/// and float totals.
fn busy_registry() -> Registry {
    let registry = Registry::new();
    for i in 0..STATS {
        match i % 4 {
            0 => registry.incr(
                &format!("http.requests[code={},route=/api/v{i}]", 200 + i % 5),
                i * 7,
            ),
            1 => registry.incr(&format!("worker {i} latency seconds"), i as f64 * 0.001_25),
            2 => registry.set(&format!("queue.depth.shard{i}"), -(i as i64)),
            _ => registry.incr(&format!("bytes sent:{i}"), u64::MAX / (i as u64 + 1)),
        }
    }
    registry
}

/// What pipe-writer's open-to-EOF benchmark serves: integer gauges with
/// short dotted names.
fn integer_registry() -> Registry {
    let registry = Registry::new();
    for i in 0..STATS {
        registry.set(&format!("app.module{}.stat_{i:05}", i % 10), i as i64 * 7);
    }
    registry
}

/// Registries in the cold case: a pass over 1,000 writers.
const COLD_REGISTRIES: usize = 1_000;

/// One writer's registry in `scripts/bench-aggregate.sh`: a third counters
/// with a tag, a third counters, a third float gauges.
fn writer_registry() -> Registry {
    let registry = Registry::new();
    for i in 0..60 {
        registry.incr(&format!("app.module{i}.requests[code=200]"), i * 3);
        registry.incr(&format!("app.module{i}.bytes_sent"), i * 3000 + 1000);
        registry.set(
            &format!("app.module{i}.latency_seconds"),
            i as f64 / 8.0 + 0.25,
        );
    }
    registry
}

/// What a straightforward implementation writes: one `writeln!` per line, with
/// `{:?}` for floats so they keep their `.0`.
fn naive_render(snapshot: &Snapshot, out: &mut Vec<u8>) {
    for (name, value) in snapshot.iter() {
        match value {
            Value::Int(i) => writeln!(out, "{name}: {i}"),
            Value::Float(f) => writeln!(out, "{name}: {f:?}"),
        }
        .expect("writing to a Vec cannot fail");
    }
}

/// Times `render` writing into `buf`, emptied before each render.
fn into_buffer(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    buf: &mut Vec<u8>,
    render: impl Fn(&mut Vec<u8>),
) {
    group.bench_function(name, |b| {
        b.iter(|| {
            buf.clear();
            render(buf);
            black_box(buf.len())
        })
    });
}

fn render(c: &mut Criterion) {
    let registry = busy_registry();
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.len(), STATS);

    let mut ours = Vec::new();
    snapshot.render_into(&mut ours);
    let mut naive = Vec::new();
    naive_render(&snapshot, &mut naive);
    // NaN/inf spellings differ from Rust's Debug, but this data has none, so
    // both renders must agree byte for byte.
    assert_eq!(
        ours, naive,
        "the naive render is not rendering the same thing"
    );

    let mut group = c.benchmark_group("render");
    let mut buf = Vec::with_capacity(ours.len());
    into_buffer(&mut group, "snapshot_10000", &mut buf, |buf| {
        black_box(&snapshot).render_into(buf)
    });
    into_buffer(&mut group, "registry_10000", &mut buf, |buf| {
        black_box(&registry).render_into(buf)
    });
    let integers = integer_registry();
    into_buffer(&mut group, "registry_10000_integers", &mut buf, |buf| {
        black_box(&integers).render_into(buf)
    });
    into_buffer(&mut group, "naive_write_10000", &mut buf, |buf| {
        naive_render(black_box(&snapshot), buf)
    });
    let writers: Vec<Registry> = (0..COLD_REGISTRIES).map(|_| writer_registry()).collect();
    let next = std::cell::Cell::new(0);
    into_buffer(&mut group, "cold_registry_180_of_1000", &mut buf, |buf| {
        let turn = next.get();
        next.set((turn + 1) % writers.len());
        writers[turn].render_into(buf)
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
