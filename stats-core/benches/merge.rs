//! Merging one pass's sources as the aggregator does (issue 15): 1,000
//! snapshots of the 180 stats `scripts/bench-aggregate.sh` feeds every
//! writer, parsed through one [`KindsCache`] (so they share one list of
//! names and one set of kinds, as sources of one program do), merged by a
//! [`TypedMerger`]; beside the floor of adding the same values into one
//! array.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use stats_core::kinds::{Kinds, KindsCache};
use stats_core::merge::TypedMerger;
use stats_core::{Snapshot, Value};

mod common;

use common::WRITER_STATS as STATS;

const SOURCES: usize = 1000;
const MAX_LINE: usize = 4096;

fn merge(c: &mut Criterion) {
    let mut cache = KindsCache::new();
    let sources: Vec<(Snapshot, Kinds)> = (0..SOURCES as u32)
        .map(|pid| {
            let (snapshot, kinds, errors) = Snapshot::parse_with_kinds_cached(
                &common::writer_snapshot(pid, pid as usize),
                MAX_LINE,
                &mut cache,
            );
            assert!(errors.is_empty(), "the bench's own lines parse");
            (snapshot, kinds)
        })
        .collect();
    assert!(
        sources
            .windows(2)
            .all(|pair| pair[0].0.shares_names_with(&pair[1].0)),
        "sources of one program share their names"
    );
    let mut group = c.benchmark_group(format!("merge_{SOURCES}_sources_of_{STATS}_stats"));
    group.bench_function("typed", |b| {
        b.iter(|| {
            let mut merger = TypedMerger::new();
            for (snapshot, kinds) in black_box(&sources) {
                merger.add_source(snapshot, kinds, |_| None);
            }
            merger.finish()
        })
    });
    group.bench_function("floor_sum_into_array", |b| {
        b.iter(|| {
            let mut totals = vec![Value::Int(0); STATS];
            for (snapshot, _) in black_box(&sources) {
                for (total, &value) in totals.iter_mut().zip(snapshot.values()) {
                    *total = total.sum(value);
                }
            }
            totals
        })
    });
    group.finish();
}

criterion_group!(benches, merge);
criterion_main!(benches);
