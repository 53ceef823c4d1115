//! Scripted benchmark: the memory of `serve`'s history with 1,000 series ×
//! one hour of 1 s points, and the time one tick takes to record.
//!
//! `cargo run --release -p host-aggregator --example history_memory [STATS]
//! [PROCESSES]`: STATS stats (default 100) in PROCESSES processes (default
//! 9) make STATS host-wide series plus STATS × PROCESSES per-process ones
//! (1,000 with the defaults), filled with 3,600 ticks at the default limits.
//! Prints VmRSS before and after, VmHWM, the value bytes held and the
//! documented bound.

use std::time::Instant;

use host_aggregator::history::{History, HistoryOptions, ProcessKey};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let stats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let processes: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(9);
    let options = HistoryOptions::new();
    let ticks = options.points;
    let names: Vec<String> = (0..stats)
        .map(|i| format!("service.component_{i}.requests_total[code=200]"))
        .collect();
    let keys: Vec<ProcessKey> = (0..processes)
        .map(|i| ProcessKey {
            pid: 10_000 + i,
            started_ms: 1_763_780_000_000,
        })
        .collect();
    let before = status_kib("VmRSS:");
    let mut history = History::new(options.clone());
    let mut tick_times = Vec::with_capacity(ticks);
    let t0 = 1_763_780_100.0;
    for tick in 0..ticks {
        let value = tick as f64 * 3.0;
        let totals = names
            .iter()
            .map(|n| (n.as_str(), value * f64::from(processes)));
        let per_process = keys
            .iter()
            .map(|key| (*key, names.iter().map(move |n| (n.as_str(), value))));
        let started = Instant::now();
        history.record_values(t0 + tick as f64, totals, per_process);
        tick_times.push(started.elapsed());
    }
    let after = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    tick_times.sort();
    let median = tick_times[tick_times.len() / 2];
    let series = history.series_count();
    println!(
        "series: {series} ({stats} host-wide + {} per process)",
        series - stats
    );
    println!("points per series: {}", history.ticks());
    println!(
        "value bytes held: {:.1} MiB (bound for these stats at the defaults: {:.1} MiB)",
        history.value_bytes() as f64 / 1048576.0,
        options.value_bytes_bound(stats) as f64 / 1048576.0
    );
    println!(
        "VmRSS before: {:.1} MiB, after: {:.1} MiB (+{:.1} MiB), VmHWM: {:.1} MiB",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after - before) as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("record one tick ({series} series): median {median:?}");
    // Keep the history alive until after the measurement.
    assert!(history.ticks() == ticks);
}
