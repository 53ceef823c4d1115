//! Fuzzes the aggregator's HTTP request handling before any pipe is read:
//! `http::target` (URL → path, query, route), `history::Query::parse` (the
//! `/history` query string), the stat globs it carries, and `/history`'s
//! answer for that query over a small recorded history.
//!
//! Input: a request URL as the server hands it over (any text). Invariants:
//! - path and query are pieces of the URL with no `?`/`#` left in the path
//!   and no `#` in the query; a `Process(pid)` route is exactly
//!   `/stats/<digits of pid>`, and any other route is one fixed path;
//! - `Query::parse` never panics; a glob without `*` or `?` matches only
//!   itself, and `*` matches everything;
//! - the `/history` answer for any accepted query is valid JSON.
#![no_main]

use std::time::Duration;

use host_aggregator::glob::glob_match;
use host_aggregator::history::{History, HistoryOptions, ProcessKey, Query};
use host_aggregator::http::{PassRoute, Route, target};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = [
    "requests",
    "load avg",
    "http.requests[code=200]",
    "",
    "a?c*",
];

fn recorded() -> History {
    let mut history = History::new(HistoryOptions {
        interval: Duration::from_secs(1),
        points: 4,
        max_series: 16,
        forget_after: Duration::from_secs(600),
    });
    let process = ProcessKey {
        pid: 42,
        started_ms: 1_763_780_000_000,
    };
    for (tick, value) in [(1.0, 1.0), (2.0, 3.0), (3.0, f64::NAN)] {
        let totals = NAMES.iter().map(|&n| (n, value));
        let processes = [(process, NAMES.iter().map(|&n| (n, value)))];
        history.record_values(1_763_780_000.0 + tick, totals, processes);
    }
    history
}

fuzz_target!(|input: &[u8]| {
    let url = String::from_utf8_lossy(input);
    let parsed = target(&url);
    assert!(url.starts_with(parsed.path), "path is the URL's start");
    assert!(!parsed.path.contains(['?', '#']), "path {:?}", parsed.path);
    assert!(!parsed.query.contains('#') && url.contains(parsed.query));
    match parsed.route {
        Some(Route::Pass(PassRoute::Process(pid))) => {
            let digits = parsed
                .path
                .strip_prefix("/stats/")
                .expect("a /stats/<pid> path");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{digits:?}");
            assert_eq!(digits.parse::<u32>().ok(), Some(pid));
        }
        Some(_) => assert!(
            [
                "/",
                "/stats",
                "/stats/",
                "/processes",
                "/metrics",
                "/influx",
                "/healthz",
                "/history"
            ]
            .contains(&parsed.path),
            "{:?} routed",
            parsed.path
        ),
        None => {}
    }

    let Ok(query) = Query::parse(parsed.query) else {
        return;
    };
    for glob in &query.stats {
        for name in NAMES.iter().copied().chain([glob.as_str()]) {
            let matched = glob_match(glob, name);
            if !glob.contains(['*', '?']) {
                assert_eq!(matched, glob == name, "{glob:?} vs {name:?}");
            }
        }
        assert!(glob_match("*", glob));
    }
    let body = recorded().to_json(&query, None);
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
        panic!(
            "/history answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        );
    }
});
