//! Rendering a merged pass of 10,000 stats in every output format of
//! `export::FORMATS` (the work behind `/stats`, `/metrics`, `/influx` and
//! `dump --format`), with names that need escaping in some of them.
//!
//! ```sh
//! cargo bench -p host-aggregator --bench export -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use host_aggregator::Pass;
use host_aggregator::export::FORMATS;
use stats_core::Snapshot;

const STATS: usize = 10_000;

/// A merged pass shaped like a busy host: tagged and plain names (some
/// with spaces, quotes and backslashes), integer counters, float totals,
/// negative gauges.
fn busy_pass() -> Pass {
    let mut text = String::new();
    for i in 0..STATS {
        match i % 4 {
            0 => text.push_str(&format!(
                "http.requests[code={},route=/api/v{i}]: {}\n",
                200 + i % 5,
                i * 7
            )),
            1 => text.push_str(&format!(
                "worker {i} latency \"seconds\": {}\n",
                i as f64 * 0.00125
            )),
            2 => text.push_str(&format!("queue.depth.shard{i}: {}\n", -(i as i64))),
            _ => text.push_str(&format!(
                "bytes sent\\{i}: {}\n",
                u64::MAX / (i as u64 + 1) / 4
            )),
        }
    }
    let (merged, errors) = Snapshot::parse(text.as_bytes(), 4096);
    assert_eq!(errors.count(), 0, "the bench's own lines parse");
    Pass {
        started: UNIX_EPOCH + Duration::from_secs(1_763_780_000),
        duration: Duration::from_millis(3),
        sources: Vec::new(),
        merged,
        kinds: Default::default(),
    }
}

fn bench(c: &mut Criterion) {
    let pass = busy_pass();
    let mut group = c.benchmark_group("export");
    for format in FORMATS {
        group.bench_function(format!("{}_{STATS}", format.name()), |b| {
            b.iter(|| black_box(format.render(black_box(&pass))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
