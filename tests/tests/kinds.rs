//! End-to-end tests of metric kinds (issue 5): real writer processes
//! (`kinds_writer`) recording histograms, counters and tasks, a real
//! `host-aggregator serve` merging them, checked over real HTTP, with
//! `promtool` and a real Prometheus.

use std::collections::BTreeMap;
use std::time::Duration;

use stats_core::{Registry, Snapshot, Value};
use stats_pipe_tests::archive::{Prometheus, wait_until};
use stats_pipe_tests::hostile::TempDir;
use stats_pipe_tests::kinds::KindsWriter;
use stats_pipe_tests::serve::{Aggregator, promtool_check_metrics};

/// Sample lines of a Prometheus text body: `name{labels}` → value, parsed
/// with Rust's (exact) float parser.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().expect("sample value"),
            };
            (series.to_owned(), value)
        })
        .collect()
}

/// `/stats` as name → number (NaN and infinities are strings in our JSON;
/// none are expected here).
fn stats(aggregator: &Aggregator) -> BTreeMap<String, f64> {
    let body = aggregator.get("/stats").json();
    body["stats"]
        .as_object()
        .expect("stats object")
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.as_f64()?)))
        .collect()
}

/// serde_json (without `float_roundtrip`) may read a float one unit in the
/// last place off; `/metrics` is compared exactly instead.
fn same_float(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 2.0 * f64::EPSILON * a.abs().max(b.abs())
}

/// Latency-like values from 1 ms to ~7.8 s, 1 % apart: every bucket between
/// min and max gets values.
fn latencies() -> Vec<f64> {
    (0..900).map(|i| 0.001 * 1.01f64.powi(i)).collect()
}

/// `n` writers serving in `dir`.
fn start_writers(dir: &std::path::Path, n: usize) -> Vec<KindsWriter> {
    (0..n).map(|_| KindsWriter::start(dir)).collect()
}

fn record_commands(name: &str, values: &[f64]) -> Vec<String> {
    values
        .iter()
        .map(|v| format!("record {name} {v:?}"))
        .collect()
}

#[test]
fn histograms_from_three_processes_merge_like_one_and_prometheus_reads_them() {
    let dir = TempDir::new("kinds-hist");
    let all = latencies();
    let mut writers = start_writers(dir.path(), 3);
    for (k, writer) in writers.iter_mut().enumerate() {
        let mine: Vec<f64> = all.iter().skip(k).step_by(3).copied().collect();
        writer.send(&record_commands("lat", &mine));
    }
    // One histogram fed every value, in this process.
    let one = Registry::new();
    for &v in &all {
        one.record("lat", v);
    }
    let whole = one.histogram("lat").distribution();
    let mut buf = Vec::new();
    stats_core::histogram_lines::render("lat", &whole, &mut buf);
    let (want, _) = Snapshot::parse(&buf, 4096);
    assert_eq!(want.get("lat.count"), Some(Value::Int(900)));

    let aggregator = Aggregator::serve(dir.path(), &["--max-age", "0s"]);
    let got = stats(&aggregator);
    let mut compared = 0;
    for (name, value) in want.iter() {
        let value = value.as_f64();
        let seen = got.get(name).copied();
        if name == "lat.sum" {
            // Float sums added in another order: equal to rounding.
            let seen = seen.expect("lat.sum");
            assert!((seen - value).abs() <= 1e-12 * value, "{seen} vs {value}");
        } else {
            assert!(
                seen.is_some_and(|s| same_float(s, value)),
                "{name}: /stats {seen:?}, one histogram {value}"
            );
        }
        compared += 1;
    }
    let histogram_lines = got.keys().filter(|n| n.starts_with("lat.")).count();
    assert_eq!(histogram_lines, compared, "no extra lat lines in /stats");
    // Exact extremes, and quantiles within the documented 1/9 of the truth.
    assert_eq!(got["lat.min"], all[0]);
    assert_eq!(got["lat.max"], all[899]);
    for (q, suffix) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
        let truth = all[((q * 900.0) as usize).max(1) - 1];
        let ours = got[&format!("lat.{suffix}")];
        assert!(
            (ours - truth).abs() <= truth / 9.0,
            "{suffix}: {ours} vs true {truth}"
        );
    }

    // Prometheus text: a histogram family with cumulative buckets.
    let metrics = aggregator.get("/metrics").text();
    assert!(metrics.contains("# TYPE lat histogram\n"), "{metrics}");
    assert!(metrics.contains("# TYPE lat_p50 gauge\n"), "{metrics}");
    let exposed = samples(&metrics);
    for (line, suffix) in [
        ("lat_p50", "p50"),
        ("lat_p90", "p90"),
        ("lat_p99", "p99"),
        ("lat_min", "min"),
        ("lat_max", "max"),
    ] {
        let want = want.get(&format!("lat.{suffix}")).unwrap().as_f64();
        assert_eq!(exposed[line], want, "{line} exactly as one histogram");
    }
    let mut buckets: Vec<(f64, f64)> = exposed
        .iter()
        .filter_map(|(series, &count)| {
            let le = series
                .strip_prefix("lat_bucket{le=\"")?
                .strip_suffix("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 40, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative: {buckets:?}"
    );
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 900.0)));
    assert_eq!(exposed["lat_count"], 900.0);
    let (code, said) = promtool_check_metrics(metrics.as_bytes());
    assert_eq!(code, 0, "promtool: {said}");

    // A real Prometheus scrapes it and reads the quantile from the buckets.
    let prometheus = Prometheus::start(&[aggregator.addr()]);
    let ours = got["lat.p50"];
    let theirs = wait_until(Duration::from_secs(30), "histogram_quantile", || {
        let result = prometheus.query("histogram_quantile(0.5, lat_bucket)")?;
        let value = result.get(0)?["value"][1].as_str()?.parse::<f64>().ok()?;
        Some(value)
    });
    // Both estimates lie in the bucket holding the median: Prometheus
    // interpolates linearly inside it, we take its relative middle.
    let index = stats_core::buckets::index(ours);
    let (lower, upper) = stats_core::buckets::bounds(index);
    assert!(
        lower <= theirs && theirs <= upper,
        "Prometheus {theirs} outside our bucket ({lower}, {upper}] of p50 {ours}"
    );
    eprintln!(
        "p50: ours {ours}, Prometheus {theirs} ({:+.2} %)",
        (theirs / ours - 1.0) * 100.0
    );
    for writer in writers {
        writer.exit();
    }
}

#[test]
fn a_counter_over_five_processes_never_decreases_as_they_exit() {
    let dir = TempDir::new("kinds-counter");
    let mut writers = start_writers(dir.path(), 5);
    for (k, writer) in writers.iter_mut().enumerate() {
        writer.send(&[
            format!("incr requests {}", 10 * (k + 1)),
            format!("record lat {}", k + 1),
            "set depth 1".to_owned(),
        ]);
    }
    let aggregator = Aggregator::serve(dir.path(), &["--max-age", "0s"]);
    let first = stats(&aggregator);
    assert_eq!(first["requests"], 150.0);
    assert_eq!(first["lat.count"], 5.0);
    assert_eq!(first["depth"], 5.0);
    let metrics = aggregator.get("/metrics").text();
    assert!(
        metrics.contains("# TYPE requests_total counter\nrequests_total 150\n"),
        "{metrics}"
    );

    let (mut last_stats, mut last_metrics) = (150.0, 150.0);
    let mut remaining = 5;
    for (k, writer) in writers.drain(..).enumerate() {
        if k == 2 {
            writer.kill(); // leaves a stale FIFO behind
        } else {
            writer.exit();
        }
        remaining -= 1;
        // The gauge goes with its process...
        wait_until(
            Duration::from_secs(10),
            "the dead process's gauge to vanish",
            || {
                let depth = stats(&aggregator).get("depth").copied().unwrap_or(0.0);
                (depth == f64::from(remaining)).then_some(())
            },
        );
        // ...the counter and the histogram stay, poll after poll.
        for _ in 0..5 {
            let now = stats(&aggregator);
            let requests = now["requests"];
            assert!(
                requests >= last_stats,
                "/stats went back: {last_stats} → {requests}"
            );
            assert_eq!(requests, 150.0, "after {} exits", k + 1);
            assert_eq!(now["lat.count"], 5.0);
            assert_eq!(now["lat.max"], 5.0);
            last_stats = requests;
            let exposed = samples(&aggregator.get("/metrics").text());
            let total = exposed["requests_total"];
            assert!(
                total >= last_metrics,
                "/metrics went back: {last_metrics} → {total}"
            );
            assert_eq!(total, 150.0);
            assert_eq!(exposed["lat_count"], 5.0);
            last_metrics = total;
        }
    }
    assert!(!stats(&aggregator).contains_key("depth"));
    // A new process counts on top of the retained total.
    let mut late = KindsWriter::start(dir.path());
    late.send(&["incr requests 1".to_owned()]);
    assert_eq!(stats(&aggregator)["requests"], 151.0);
    late.exit();
}

#[test]
fn task_outcomes_are_counted_through_the_pipe_and_the_aggregator() {
    let dir = TempDir::new("kinds-task");
    let mut a = KindsWriter::start(dir.path());
    let mut b = KindsWriter::start(dir.path());
    let runs = |success: usize, errors: usize, panics: usize| -> Vec<String> {
        let mut commands = Vec::new();
        commands.extend(std::iter::repeat_n("task job success", success));
        commands.extend(std::iter::repeat_n("task job error", errors));
        commands.extend(std::iter::repeat_n("task job panic", panics));
        commands.into_iter().map(str::to_owned).collect()
    };
    a.send(&runs(3, 2, 1));
    b.send(&runs(1, 1, 1));

    // Straight from A's pipe, as `cat` would read it.
    let text = String::from_utf8(std::fs::read(a.path()).unwrap()).unwrap();
    for line in [
        "#counter job.success: 1",
        "#counter job.errors: 1",
        "#counter job.panics: 1",
        "#max job.highwater: 1",
        "#histogram job.duration[outcome=success]: 1",
        "job.success: 3",
        "job.errors: 2",
        "job.panics: 1",
        "job.current: 0",
        "job.highwater: 1",
        "job.duration.count[outcome=success]: 3",
        "job.duration.count[outcome=error]: 2",
        "job.duration.count[outcome=panic]: 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }

    let aggregator = Aggregator::serve(dir.path(), &["--max-age", "0s"]);
    let got = stats(&aggregator);
    let want = [
        ("job.success", 4.0),
        ("job.errors", 3.0),
        ("job.panics", 2.0),
        ("job.current", 0.0),
        // The most runs at once in one process: the max, not the sum.
        ("job.highwater", 1.0),
        ("job.duration.count[outcome=success]", 4.0),
        ("job.duration.count[outcome=error]", 3.0),
        ("job.duration.count[outcome=panic]", 2.0),
    ];
    for (name, value) in want {
        assert_eq!(got.get(name), Some(&value), "{name}");
    }
    let metrics = aggregator.get("/metrics").text();
    for line in [
        "# TYPE job_success_total counter\njob_success_total 4\n",
        "# TYPE job_panics_total counter\njob_panics_total 2\n",
        "# TYPE job_highwater gauge\njob_highwater 1\n",
        "job_duration_count{outcome=\"panic\"} 2\n",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
    let (code, said) = promtool_check_metrics(metrics.as_bytes());
    assert_eq!(code, 0, "promtool: {said}");
    a.exit();
    b.exit();
}

#[test]
fn rule_overrides_merge_by_the_given_rule() {
    let dir = TempDir::new("kinds-rule");
    let mut writers = start_writers(dir.path(), 3);
    for (k, writer) in writers.iter_mut().enumerate() {
        writer.send(&[
            format!("set queue.depth {}", k + 2),
            format!("set load {}", k + 2),
        ]);
    }
    let aggregator = Aggregator::serve(
        dir.path(),
        &[
            "--max-age",
            "0s",
            "--rule",
            "queue.*=min",
            "--rule",
            "*=max",
        ],
    );
    let got = stats(&aggregator);
    assert_eq!(got["queue.depth"], 2.0, "first match wins");
    assert_eq!(got["load"], 4.0);
    for writer in writers {
        writer.exit();
    }
}
