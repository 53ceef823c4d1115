//! End-to-end test of issue 12, point 6, "Invalid names never reach an
//! exporter": a real foreign writer (`hostile_writer.py control-names`, a
//! pipestatic-style Python process) serves, through a real FIFO, good lines
//! among lines whose names hold TAB, VT, DEL, CR, NUL, a TAB in a tag value
//! and the C1 control U+009B. The real `host-aggregator` binary (`dump` and
//! `serve`) skips and counts those lines like any garbage, keeps the good
//! ones, and its Prometheus text passes `promtool check metrics`.

use std::process::Command;

use serde_json::json;
use stats_pipe_tests::hostile::{Processes, TempDir, spawn_hostile_writer};
use stats_pipe_tests::serve::{Aggregator, promtool_check_metrics, workspace_binary};

/// Lines 2 to 8 of the fixture's snapshot: one per control character.
const BAD_LINES: u64 = 7;

/// What `/processes` says about each of them.
const CONTROL_ERROR: &str = "stat name contains a control character";

/// Where `bytes` holds a C0 control other than `\n`, DEL or a C1 control
/// (`0xC2 0x80..=0x9F`).
fn raw_control(bytes: &[u8]) -> Option<usize> {
    bytes.iter().enumerate().position(|(i, &b)| {
        (b < 0x20 && b != b'\n')
            || b == 0x7f
            || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n)))
    })
}

/// Runs the real `host-aggregator` with `args`; returns stdout, after
/// checking it exited 0.
fn host_aggregator(args: &[&str]) -> Vec<u8> {
    let output = Command::new(workspace_binary("host-aggregator", "host-aggregator"))
        .args(args)
        .output()
        .expect("run host-aggregator");
    assert!(
        output.status.success(),
        "host-aggregator {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn names_with_control_characters_are_skipped_counted_and_never_exported() {
    let dir = TempDir::new("control-names");
    let mut processes = Processes::new();
    let pid = spawn_hostile_writer(&mut processes, dir.path(), "control-names");
    let d = dir.path().to_str().expect("UTF-8 temp dir");

    // The writer really serves the raw bytes: a plain `cat` of its pipe.
    let cat = Command::new("cat")
        .arg(dir.join(format!("{pid}.stats")))
        .output()
        .expect("run cat");
    assert!(cat.status.success());
    for raw in [
        &b"tab\tname"[..],
        b"vt\x0bname",
        b"del\x7fname",
        b"cr\rname",
    ] {
        assert!(
            cat.stdout.windows(raw.len()).any(|w| w == raw),
            "{:?}",
            String::from_utf8_lossy(&cat.stdout)
        );
    }
    assert!(cat.stdout.windows(9).any(|w| w == b"nul\0name:"));

    // `dump`: only the good lines, in every format.
    let stats: serde_json::Value =
        serde_json::from_slice(&host_aggregator(&["dump", "--pipe-dir", d])).expect("JSON");
    assert_eq!(
        stats["stats"],
        json!({"good.requests": 1, "good.load[code=200]": 2.5})
    );
    let text = host_aggregator(&["dump", "--pipe-dir", d, "--format", "text"]);
    assert_eq!(
        String::from_utf8_lossy(&text),
        "good.load[code=200]: 2.5\ngood.requests: 1\n"
    );

    let metrics = host_aggregator(&["dump", "--pipe-dir", d, "--format", "prometheus"]);
    let shown = String::from_utf8_lossy(&metrics);
    assert_eq!(raw_control(&metrics), None, "{shown}");
    assert!(shown.contains("\ngood_requests 1\n"), "{shown}");
    assert!(shown.contains("\ngood_load{code=\"200\"} 2.5\n"), "{shown}");
    assert!(
        shown.contains(&format!("\nstats_pipe_bad_lines {BAD_LINES}\n")),
        "{shown}"
    );
    for refused in ["tab", "vt", "del", "cr", "nul", "tagged", "c1"] {
        assert!(!shown.contains(refused), "{refused} in {shown}");
    }
    let (code, said) = promtool_check_metrics(&metrics);
    assert_eq!(code, 0, "promtool: {said}\n{shown}");

    let influx = host_aggregator(&["dump", "--pipe-dir", d, "--format", "influx"]);
    let lines = String::from_utf8_lossy(&influx);
    assert_eq!(raw_control(&influx), None, "{lines}");
    let measurements: Vec<&str> = lines
        .lines()
        .map(|line| line.split([',', ' ']).next().unwrap_or(""))
        .collect();
    assert_eq!(measurements, ["good.load", "good.requests"], "{lines}");

    // `serve`: the count and the reasons per source, and the same text.
    let server = Aggregator::serve(dir.path(), &[]);
    let listed = server.get("/processes").json();
    let list = listed["processes"].as_array().expect("a list");
    assert_eq!(list.len(), 1, "{listed}");
    let source = &list[0];
    assert_eq!(source["pid"], pid, "{source}");
    assert_eq!(source["status"], "ok", "{source}");
    assert_eq!(source["foreign"], true, "{source}");
    assert_eq!(source["lines"], 2, "{source}");
    assert_eq!(source["bad_lines"], BAD_LINES, "{source}");
    let errors: Vec<(u64, &str)> = source["first_errors"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap_or(0),
                e["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let want: Vec<(u64, &str)> = (2..2 + BAD_LINES)
        .map(|line| (line, CONTROL_ERROR))
        .collect();
    assert_eq!(errors, want, "{source}");

    let served = server.get("/metrics");
    assert_eq!(served.status, 200);
    assert_eq!(raw_control(&served.body), None);
    let served = served.text();
    assert!(served.contains("\ngood_requests 1\n"), "{served}");
    assert!(
        served.contains(&format!("\nstats_pipe_bad_lines {BAD_LINES}\n")),
        "{served}"
    );
    let (code, said) = promtool_check_metrics(served.as_bytes());
    assert_eq!(code, 0, "promtool: {said}\n{served}");

    let served = server.get("/influx");
    assert_eq!(served.status, 200);
    assert_eq!(raw_control(&served.body), None);
    assert_eq!(served.text().lines().count(), 2, "{}", served.text());
}
