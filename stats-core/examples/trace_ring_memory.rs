//! Scripted measurement: the memory a registry's trace ring holds at its
//! default bound (1,000 newest traces, plus the slowest few per root task),
//! for traces of a few spans and for traces at the span limit.
//!
//! `cargo run --release -p stats-core --example trace_ring_memory`
//!
//! For each shape, fills a fresh registry's ring well past its capacity
//! (every root captured) and prints the growth of VmRSS, the kept traces
//! and bytes per trace and per span. RSS is what the process really holds
//! (allocator overhead included), read from `/proc/self/status`.

use stats_core::Registry;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Fills a fresh ring with `traces` root runs of `request`, each with
/// `children` nested `db.query` runs, and returns (kept traces, spans,
/// RSS growth in KiB). Registries are leaked on purpose so that one
/// shape's freed memory does not hide the next one's growth.
fn fill(traces: usize, children: usize) -> (usize, usize, u64) {
    let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
    registry.tracer().set_sample_every(1);
    let (root, child) = (registry.task("request"), registry.task("db.query"));
    let before = rss_kib();
    for _ in 0..traces {
        root.run(|| {
            for _ in 0..children {
                let _ = child.run(|| Ok::<(), ()>(()));
            }
            Ok::<(), ()>(())
        })
        .ok();
    }
    let after = rss_kib();
    let kept = registry.tracer().traces();
    let spans = kept.iter().map(|trace| trace.spans.len()).sum();
    (kept.len(), spans, after.saturating_sub(before))
}

fn main() {
    println!("shape                         kept  spans    RSS growth   per trace   per span");
    for (label, children) in [("root + 3 children", 3), ("root + 99 children (limit)", 99)] {
        let (kept, spans, kib) = fill(5_000, children);
        println!(
            "{label:<28} {kept:>5} {spans:>6} {:>9.2} MB {:>8} B {:>8} B",
            kib as f64 / 1024.0,
            kib * 1024 / kept.max(1) as u64,
            kib * 1024 / spans.max(1) as u64,
        );
    }
}
