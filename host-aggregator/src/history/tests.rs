//! Tests of the history: rings, rates across restarts, memory bounds.

use super::*;
use serde_json::Value as Json;
use stats_core::Value;

fn options(points: usize, max_series: usize) -> HistoryOptions {
    HistoryOptions {
        points,
        max_series,
        ..HistoryOptions::new()
    }
}

fn key(pid: u32, started: u64) -> ProcessKey {
    ProcessKey {
        pid,
        started_ms: started * 1000,
    }
}

/// One tick: each process's `(stat, value)` pairs, totals summed.
fn tick(history: &mut History, time: f64, processes: &[(ProcessKey, &[(&str, f64)])]) {
    let mut totals: Vec<(&str, f64)> = Vec::new();
    for (_, stats) in processes {
        for &(name, value) in *stats {
            match totals.iter_mut().find(|(n, _)| *n == name) {
                Some((_, sum)) => *sum += value,
                None => totals.push((name, value)),
            }
        }
    }
    history.record_values(
        time,
        totals,
        processes
            .iter()
            .map(|(key, stats)| (*key, stats.iter().copied())),
    );
}

fn json(history: &History, query: &str) -> Json {
    serde_json::from_slice(&history.to_json(&Query::parse(query).unwrap(), None)).unwrap()
}

fn floats(value: &Json) -> Vec<Option<f64>> {
    value.as_array().unwrap().iter().map(Json::as_f64).collect()
}

#[test]
fn ring_really_trims_and_keeps_the_newest() {
    let mut ring = Ring::new(5);
    for i in 0..12 {
        ring.push(f64::from(i));
    }
    assert_eq!(ring.len(), 5);
    assert_eq!(
        ring.values.capacity(),
        5,
        "a full ring holds exactly its capacity"
    );
    let kept: Vec<f64> = (0..ring.len()).map(|i| ring.get(i)).collect();
    assert_eq!(kept, [7.0, 8.0, 9.0, 10.0, 11.0]);
    assert_eq!(ring.last(), Some(11.0));
}

#[test]
fn history_trims_every_series_to_the_window() {
    let mut history = History::new(options(4, 100));
    let p = key(7, 1);
    for i in 0..10 {
        tick(
            &mut history,
            1000.0 + f64::from(i),
            &[(p, &[("x", f64::from(i))])],
        );
    }
    assert_eq!(history.ticks(), 4);
    let stat = &history.stats["x"];
    assert_eq!(stat.total.values.len(), 4);
    assert_eq!(stat.total_rate.values.len(), 4);
    assert_eq!(stat.processes[&p].values.len(), 4);
    let body = json(&history, "");
    assert_eq!(
        floats(&body["times"]),
        [Some(1006.0), Some(1007.0), Some(1008.0), Some(1009.0)]
    );
    let values = floats(&body["stats"][0]["total"]["values"]);
    assert_eq!(values, [Some(6.0), Some(7.0), Some(8.0), Some(9.0)]);
    let values = floats(&body["stats"][0]["processes"][0]["values"]);
    assert_eq!(values, [Some(6.0), Some(7.0), Some(8.0), Some(9.0)]);
}

#[test]
fn point_times_are_the_collection_times() {
    // Irregular times (a slow pass, a skipped beat): every point keeps
    // the time its pass was taken, not start + i * interval.
    let collected = [
        1_763_780_000.25,
        1_763_780_001.27,
        1_763_780_002.9,
        1_763_780_010.0,
    ];
    let mut history = History::new(options(100, 100));
    for (i, time) in collected.iter().enumerate() {
        tick(&mut history, *time, &[(key(1, 5), &[("n", i as f64)])]);
    }
    let body = json(&history, "");
    let times: Vec<f64> = floats(&body["times"]).into_iter().flatten().collect();
    assert_eq!(times, collected);
    assert_eq!(history.times(), collected);
    // `since` keeps the points strictly after it.
    let body = json(&history, "since=1763780001.27");
    let times: Vec<f64> = floats(&body["times"]).into_iter().flatten().collect();
    assert_eq!(times, collected[2..]);
    assert_eq!(
        floats(&body["stats"][0]["total"]["values"]),
        [Some(2.0), Some(3.0)]
    );
}

#[test]
fn record_uses_the_pass_start_time() {
    use stats_core::{Entry, Snapshot};
    let started = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(1_763_780_000_125);
    let mut source = Source::new(format!("/x/{}.stats", std::process::id()).into());
    source.status = crate::Status::Ok;
    source.snapshot = Snapshot::from_entries([Entry {
        name: "hits".into(),
        value: Value::Int(3),
    }]);
    let pass = Pass {
        started,
        duration: Duration::from_millis(3),
        merged: source.snapshot.clone(),
        kinds: Default::default(),
        sources: vec![source],
    };
    let mut history = History::new(HistoryOptions::new());
    history.record(&pass);
    assert_eq!(history.times(), [1_763_780_000.125]);
    let body = json(&history, "pid=0");
    assert_eq!(body["stats"][0]["processes"].as_array().unwrap().len(), 0);
    let body = json(&history, &format!("pid={}", std::process::id()));
    let process = &body["stats"][0]["processes"][0];
    assert_eq!(process["pid"], std::process::id());
    // The start time came from /proc: this test process started before now.
    assert!(process["started"].as_f64().unwrap() > 1.0e9);
    assert_eq!(floats(&process["values"]), [Some(3.0)]);
    let query = Query::parse("sources=1").unwrap();
    let body: Json = serde_json::from_slice(&history.to_json(&query, Some(&pass))).unwrap();
    let row = &body["sources"][0];
    assert_eq!(row["pid"], std::process::id());
    assert_eq!(row["status"], "ok");
    assert_eq!(row["last_seen"], Json::Null);
    assert!(row["process"]["rss_bytes"].as_u64().unwrap() > 0);
    assert!(row["process"]["threads"].as_u64().unwrap() >= 1);
}

#[test]
fn declared_kinds_decide_and_only_foreign_stats_are_guessed() {
    use stats_core::kinds::{Kinds, WireKind};
    let source = |pid: u32, foreign: bool, text: &str| {
        let mut source = Source::new(format!("/x/{pid}.stats").into());
        source.status = crate::Status::Ok;
        source.foreign = foreign;
        source.snapshot = stats_core::Snapshot::parse(text.as_bytes(), 4096).0;
        source
    };
    let mut kinds = Kinds::new();
    kinds.declare("requests", WireKind::Counter);
    kinds.declare("lat", WireKind::Histogram);
    let mut history = History::new(HistoryOptions::new());
    for (i, n) in [1, 2, 3].into_iter().enumerate() {
        let ours = format!("requests: {n}\nqueue: {n}\nlat.count: {n}\nlat.max: {n}\n");
        let sources = vec![
            source(1, false, &ours),
            source(2, true, &format!("foreign.up: {n}\n")),
        ];
        let pass = Pass {
            started: std::time::UNIX_EPOCH + Duration::from_secs(10 + i as u64),
            duration: Duration::from_millis(1),
            merged: stats_core::merge::sum(sources.iter().map(|s| &s.snapshot)),
            kinds: kinds.clone(),
            sources,
        };
        history.record(&pass);
    }
    // Every stat only grew; only the declared ones and the foreign one
    // (guessed) are counters.
    for (name, want) in [
        ("requests", true),
        ("lat.count", true),
        ("lat.max", false),
        ("queue", false),
        ("foreign.up", true),
    ] {
        assert_eq!(history.is_counter(name), want, "{name}");
    }
}

#[test]
fn recorder_ticks_on_schedule_and_stops_when_dropped() {
    let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&ticks);
    let recorder = Recorder::start(Duration::from_millis(20), move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(recorder);
    let after_drop = ticks.load(std::sync::atomic::Ordering::SeqCst);
    // About 15; a loaded machine may run fewer, never none.
    assert!((2..=16).contains(&after_drop), "{after_drop}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), after_drop);
}

#[test]
fn rates_across_a_restart_never_go_negative() {
    let mut history = History::new(options(100, 100));
    let old = key(42, 100);
    let other = key(43, 100);
    // Both already running when first seen: no rate on the first tick.
    tick(
        &mut history,
        1000.0,
        &[(old, &[("req", 500.0)]), (other, &[("req", 10.0)])],
    );
    tick(
        &mut history,
        1001.0,
        &[(old, &[("req", 510.0)]), (other, &[("req", 12.0)])],
    );
    tick(
        &mut history,
        1002.0,
        &[(old, &[("req", 530.0)]), (other, &[("req", 14.0)])],
    );
    // PID 42 restarts at 1002.5 (same PID, new start time) and has
    // counted 7 by the next pass; the host total drops from 544 to 23.
    let new = ProcessKey {
        pid: 42,
        started_ms: 1_002_500,
    };
    tick(
        &mut history,
        1003.0,
        &[(new, &[("req", 7.0)]), (other, &[("req", 16.0)])],
    );
    tick(
        &mut history,
        1005.0,
        &[(new, &[("req", 17.0)]), (other, &[("req", 20.0)])],
    );
    let body = json(&history, "stat=req");
    let stat = &body["stats"][0];
    assert_eq!(stat["counter"], true);
    assert_eq!(
        floats(&stat["total"]["values"]),
        [
            Some(510.0),
            Some(522.0),
            Some(544.0),
            Some(23.0),
            Some(37.0)
        ]
    );
    // 7 new + 2 from the other process; then (10 + 4) over 2 s.
    assert_eq!(
        floats(&stat["total"]["rates"]),
        [None, Some(12.0), Some(22.0), Some(9.0), Some(7.0)]
    );
    let processes = stat["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 3, "the restarted process is a new series");
    assert_eq!(
        floats(&processes[0]["rates"]),
        [None, Some(10.0), Some(20.0), None, None]
    );
    assert_eq!(
        floats(&processes[1]["rates"]),
        [None, None, None, Some(7.0), Some(5.0)]
    );
    let latest = history.latest();
    assert_eq!(latest[0].rate, Some(7.0));
    assert_eq!(latest[0].processes.len(), 2);
}

#[test]
fn a_counter_reset_within_a_process_counts_its_new_value() {
    let mut history = History::new(options(100, 100));
    history
        .declared
        .declare("c", stats_core::kinds::WireKind::Counter);
    let p = key(5, 10);
    for (i, value) in [100.0, 150.0, 4.0, 10.0].into_iter().enumerate() {
        tick(
            &mut history,
            2000.0 + i as f64,
            &[(p, &[("c", value), ("g", value)])],
        );
    }
    let body = json(&history, "");
    assert_eq!(body["stats"][0]["name"], "c");
    assert_eq!(
        floats(&body["stats"][0]["total"]["rates"]),
        [None, Some(50.0), Some(4.0), Some(6.0)]
    );
    // `g` is declared a gauge: no rates.
    assert_eq!(body["stats"][1]["counter"], false);
    assert!(body["stats"][1]["total"].get("rates").is_none());
}

#[test]
fn without_a_hint_a_stat_that_ever_fell_is_a_gauge() {
    let mut history = History::new(options(100, 100));
    let p = key(5, 10);
    tick(
        &mut history,
        1.0,
        &[(p, &[("up", 1.0), ("load", 3.0), ("neg", -1.0)])],
    );
    tick(
        &mut history,
        2.0,
        &[(p, &[("up", 2.0), ("load", 4.0), ("neg", -1.0)])],
    );
    assert!(history.is_counter("up") && history.is_counter("load"));
    tick(
        &mut history,
        3.0,
        &[(p, &[("up", 3.0), ("load", 2.5), ("neg", -1.0)])],
    );
    assert!(history.is_counter("up"));
    assert!(!history.is_counter("load"));
    assert!(!history.is_counter("neg"));
    assert!(!history.is_counter("never seen"));
}

#[test]
fn a_missed_tick_is_a_gap_and_the_rate_spans_it() {
    let mut history = History::new(options(100, 100));
    let (a, b) = (key(1, 1), key(2, 1));
    tick(
        &mut history,
        10.0,
        &[(a, &[("n", 0.0)]), (b, &[("n", 0.0)])],
    );
    tick(&mut history, 11.0, &[(b, &[("n", 1.0)])]);
    tick(
        &mut history,
        12.0,
        &[(a, &[("n", 8.0)]), (b, &[("n", 2.0)])],
    );
    let body = json(&history, "");
    let a_series = &body["stats"][0]["processes"][0];
    assert_eq!(floats(&a_series["values"]), [Some(0.0), None, Some(8.0)]);
    assert_eq!(floats(&a_series["rates"]), [None, None, Some(4.0)]);
}

#[test]
fn memory_stays_bounded_with_thousands_of_series() {
    let points = 50;
    let max_series = 2_000;
    let mut history = History::new(options(points, max_series));
    let names: Vec<String> = (0..20).map(|i| format!("stat.{i}")).collect();
    // 500 processes × 20 stats = 10,000 per-process series wanted, every
    // tick, for 3 windows; process churn too (a tenth restart each tick).
    let mut established_early = 0;
    for t in 0..150u32 {
        let processes: Vec<(ProcessKey, Vec<(&str, f64)>)> = (0..500u32)
            .map(|pid| {
                let generation = if pid % 10 == 0 { u64::from(t) } else { 0 };
                let stats = names.iter().map(|n| (n.as_str(), f64::from(t))).collect();
                (key(pid + 1, 1 + generation), stats)
            })
            .collect();
        let totals: Vec<(&str, f64)> = names
            .iter()
            .map(|n| (n.as_str(), 500.0 * f64::from(t)))
            .collect();
        history.record_values(
            f64::from(t),
            totals,
            processes
                .iter()
                .map(|(k, stats)| (*k, stats.iter().copied())),
        );
        assert!(
            history.series_count() <= max_series,
            "tick {t}: {}",
            history.series_count()
        );
        if t == 5 {
            established_early = established(&history);
        }
    }
    assert_eq!(history.series_count(), max_series);
    assert!(history.evicted() > 0);
    let counted: usize = history.stats.values().map(|s| 1 + s.processes.len()).sum();
    assert_eq!(counted, history.series_count());
    assert!(history.value_bytes() <= options(points, max_series).value_bytes_bound(names.len()));
    // Every host-wide series survived the pressure, with full windows.
    for name in &names {
        assert_eq!(history.stats[name.as_str()].total.values.len(), points);
    }
    // Established series were kept over newcomers: after the first
    // ticks (when the restarted processes' first series went stale and
    // their slots were handed on), the originals are never churned.
    assert_eq!(established(&history), established_early);
    // And nothing stale was kept while fresh series were turned away.
    let last = history.next_tick - 1;
    assert!(
        history
            .stats
            .values()
            .flat_map(|s| s.processes.values())
            .all(|s| s.last_tick == last)
    );
}

fn established(history: &History) -> usize {
    history
        .stats
        .values()
        .flat_map(|s| s.processes.values())
        .filter(|s| s.created_tick == 0)
        .count()
}

#[test]
fn dead_processes_are_forgotten() {
    let mut history = History::new(HistoryOptions {
        forget_after: Duration::from_secs(5),
        ..options(100, 100)
    });
    let (dead, alive) = (key(1, 1), key(2, 1));
    tick(
        &mut history,
        0.0,
        &[(dead, &[("n", 1.0)]), (alive, &[("n", 1.0)])],
    );
    for t in 1..=5 {
        tick(&mut history, f64::from(t), &[(alive, &[("n", 1.0)])]);
    }
    assert_eq!(history.stats["n"].processes.len(), 2);
    tick(&mut history, 6.0, &[(alive, &[("n", 1.0)])]);
    assert_eq!(history.stats["n"].processes.len(), 1);
    assert_eq!(history.series_count(), 2);
}
