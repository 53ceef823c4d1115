//! Parsing one process's snapshot as the aggregator's pass does (issue
//! 15): the 180 stats `scripts/bench-aggregate.sh` feeds every writer
//! (counters, tagged counters, float gauges), rendered with kind lines and
//! the envelope, parsed with a warm [`KindsCache`] (the kind block
//! recognised, the names shared with the last snapshot), beside the same
//! bytes parsed with no cache and the floor of splitting them into lines.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use stats_core::Snapshot;
use stats_core::kinds::KindsCache;

mod common;

use common::WRITER_STATS as STATS;

const MAX_LINE: usize = 4096;

fn parse(c: &mut Criterion) {
    let bytes = common::writer_snapshot(4242, 0);
    let mut group = c.benchmark_group(format!("parse_{STATS}_stats"));
    let mut cache = KindsCache::new();
    let (first, _, errors) = Snapshot::parse_with_kinds_cached(&bytes, MAX_LINE, &mut cache);
    assert!(errors.is_empty(), "the bench's own lines parse");
    let kept = first;
    group.bench_function("cached_warm", |b| {
        b.iter(|| Snapshot::parse_with_kinds_cached(black_box(&bytes), MAX_LINE, &mut cache))
    });
    group.bench_function("uncached", |b| {
        b.iter(|| Snapshot::parse(black_box(&bytes), MAX_LINE))
    });
    group.bench_function("floor_split_lines", |b| {
        b.iter(|| memchr::memchr_iter(b'\n', black_box(&bytes)).count())
    });
    drop(kept);
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
