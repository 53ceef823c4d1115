//! Tests of the Prometheus rendering: names, labels, families, escaping,
//! and the output read back by an independent parser.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::super::snapshot;
use super::*;
use crate::{RefuseReason, Source, Status};

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn metric_name_table() {
    let cases = [
        ("requests", "requests"),
        ("load avg", "load_avg"),
        ("My Nice Stat", "my_nice_stat"),
        ("a.b.c", "a_b_c"),
        ("host:port", "host_port"),
        ("another[one]", "another_one"),
        ("http.requests", "http_requests"),
        ("requestCount", "request_count"),
        ("HTTPServer", "http_server"),
        ("cpu2Load", "cpu2_load"),
        ("already_snake_case", "already_snake_case"),
        ("__double", "__double"),
        ("a -- b", "a_b"),
        ("a_.b", "a_b"),
        ("9lives", "_9lives"),
        ("...", "_"),
        ("запросы", "_"),
        ("x:", "x"),
        ("ü-ber", "ber"),
        ("process.cpu_seconds", "stats_pipe_process_cpu_seconds"),
        ("process_open_fds", "stats_pipe_process_open_fds"),
        ("process.rss bytes", "stats_pipe_process_rss_bytes"),
        ("processes", "processes"),
        ("my.process.threads", "my_process_threads"),
    ];
    for (base, want) in cases {
        assert_eq!(metric_name(base), want, "{base:?}");
    }
}

#[test]
fn label_name_table() {
    let cases = [
        ("code", "code"),
        ("Method", "Method"),
        ("content-type", "content_type"),
        ("1st", "_1st"),
        ("__name__", "_name__"),
        ("stats_pipe_name", "_stats_pipe_name"),
        ("", "_"),
    ];
    for (key, want) in cases {
        assert_eq!(label_name(key), want, "{key:?}");
    }
}

#[test]
fn renders_families_labels_and_values() {
    let got = text(render_snapshot(&snapshot(&[
        ("http.requests[code=200,method=GET]", Value::Int(4000)),
        ("http.requests[code=500,method=GET]", Value::Int(3)),
        ("load avg", Value::Float(0.5)),
        ("ratio", Value::Float(3.0)),
        ("tiny", Value::Float(1e-7)),
        ("nan", Value::Float(f64::NAN)),
        ("up", Value::Float(f64::INFINITY)),
        ("down", Value::Float(f64::NEG_INFINITY)),
        ("big", Value::Int(i64::MAX)),
    ])));
    assert_eq!(
        got,
        "# HELP big stat big\n# TYPE big untyped\nbig 9223372036854775807\n\
         # HELP down stat down\n# TYPE down untyped\ndown -Inf\n\
         # HELP http_requests stat http.requests\n# TYPE http_requests untyped\n\
         http_requests{code=\"200\",method=\"GET\"} 4000\n\
         http_requests{code=\"500\",method=\"GET\"} 3\n\
         # HELP load_avg stat load avg\n# TYPE load_avg untyped\nload_avg 0.5\n\
         # HELP nan stat nan\n# TYPE nan untyped\nnan NaN\n\
         # HELP ratio stat ratio\n# TYPE ratio untyped\nratio 3.0\n\
         # HELP tiny stat tiny\n# TYPE tiny untyped\ntiny 1e-7\n\
         # HELP up stat up\n# TYPE up untyped\nup +Inf\n"
    );
}

#[test]
fn label_values_are_escaped_and_duplicate_keys_keep_the_first() {
    let name = stats_core::tags::join("x", &[("path", "a\\b\"c\nd"), ("k", "1")]);
    let got = text(render_snapshot(&snapshot(&[
        (&name, Value::Int(1)),
        ("y[a.b=1,a_b=2]", Value::Int(2)),
    ])));
    assert!(
        got.contains("x{path=\"a\\\\b\\\"c\\nd\",k=\"1\"} 1\n"),
        "{got}"
    );
    assert!(got.contains("y{a_b=\"1\"} 2\n"), "{got}");
}

#[test]
fn collisions_get_the_original_name_as_a_label() {
    let got = text(render_snapshot(&snapshot(&[
        ("a.b", Value::Int(1)),
        ("a_b", Value::Int(2)),
        ("a b[k=v]", Value::Int(3)),
        ("a-b[k=v]", Value::Int(4)),
        ("a.b[k=w]", Value::Int(5)),
    ])));
    assert_eq!(
        got,
        "# HELP a_b stat a.b; stat a_b; stat a b; stat a-b\n# TYPE a_b untyped\n\
         a_b{stats_pipe_name=\"a.b\"} 1\n\
         a_b{stats_pipe_name=\"a_b\"} 2\n\
         a_b{k=\"v\",stats_pipe_name=\"a b[k=v]\"} 3\n\
         a_b{k=\"v\",stats_pipe_name=\"a-b[k=v]\"} 4\n\
         a_b{k=\"w\"} 5\n"
    );
}

#[test]
fn a_user_label_cannot_forge_the_collision_label() {
    let got = text(render_snapshot(&snapshot(&[
        ("x.", Value::Int(1)),
        ("x-", Value::Int(2)),
        ("x[stats_pipe_name=x.]", Value::Int(3)),
    ])));
    assert!(got.contains("x{_stats_pipe_name=\"x.\"} 3\n"), "{got}");
    assert!(got.contains("x{stats_pipe_name=\"x.\"} 1\n"), "{got}");
}

/// A merged snapshot with kinds, parsed from a pipe's text.
fn typed(text: &str) -> String {
    let (snapshot, kinds, errors) = Snapshot::parse_with_kinds(text.as_bytes(), 4096);
    assert!(errors.is_empty());
    String::from_utf8(render_typed(&snapshot, &kinds)).unwrap()
}

#[test]
fn typed_rendering_table() {
    let cases = [
        (
            "counters get _total once",
            "#counter requests: 1\n#counter bytes_total: 1\nrequests[code=200]: 4\nrequests: 9\nbytes_total: 7\n#counter requests[code=200]: 1\n",
            "# HELP bytes_total stat bytes_total\n# TYPE bytes_total counter\nbytes_total 7\n\
             # HELP requests_total stat requests\n# TYPE requests_total counter\n\
             requests_total 9\nrequests_total{code=\"200\"} 4\n",
        ),
        (
            "max is a gauge, and so is an undeclared stat of ours",
            "#max jobs.highwater: 1\njobs.highwater: 3\nqueue: 2\n",
            "# HELP jobs_highwater stat jobs.highwater\n# TYPE jobs_highwater gauge\njobs_highwater 3\n\
             # HELP queue stat queue\n# TYPE queue gauge\nqueue 2\n",
        ),
        (
            "a gauge named like a counter or a histogram sample is untyped, name kept",
            "#max peak_count: 1\npeak_count: 4\nbytes_total: 7\nitems.count: 2\nload.sum: 1.5\nx.bucket: 1\n",
            "# HELP bytes_total stat bytes_total\n# TYPE bytes_total untyped\nbytes_total 7\n\
             # HELP items_count stat items.count\n# TYPE items_count untyped\nitems_count 2\n\
             # HELP load_sum stat load.sum\n# TYPE load_sum untyped\nload_sum 1.5\n\
             # HELP peak_count stat peak_count\n# TYPE peak_count untyped\npeak_count 4\n\
             # HELP x_bucket stat x.bucket\n# TYPE x_bucket untyped\nx_bucket 1\n",
        ),
        (
            "the writer's process figures: our prefix, typed, never the standard names",
            "#counter process.cpu_seconds: 1\n#max process.uptime_seconds: 1\n\
             process.cpu_seconds: 0.42\nprocess.open_fds: 9\nprocess.rss_bytes: 4231168\n\
             process.threads: 5\nprocess.uptime_seconds: 73.5\n",
            "# HELP stats_pipe_process_cpu_seconds_total stat process.cpu_seconds\n\
             # TYPE stats_pipe_process_cpu_seconds_total counter\nstats_pipe_process_cpu_seconds_total 0.42\n\
             # HELP stats_pipe_process_open_fds stat process.open_fds\n\
             # TYPE stats_pipe_process_open_fds gauge\nstats_pipe_process_open_fds 9\n\
             # HELP stats_pipe_process_rss_bytes stat process.rss_bytes\n\
             # TYPE stats_pipe_process_rss_bytes gauge\nstats_pipe_process_rss_bytes 4231168\n\
             # HELP stats_pipe_process_threads stat process.threads\n\
             # TYPE stats_pipe_process_threads gauge\nstats_pipe_process_threads 5\n\
             # HELP stats_pipe_process_uptime_seconds stat process.uptime_seconds\n\
             # TYPE stats_pipe_process_uptime_seconds gauge\nstats_pipe_process_uptime_seconds 73.5\n",
        ),
        (
            "histogram: cumulative buckets, +Inf, sum, count; gauges beside",
            "#histogram lat[route=/a]: 1\nlat.count[route=/a]: 3\nlat.sum[route=/a]: 0.75\n\
             lat.min[route=/a]: 0.125\nlat.max[route=/a]: 0.5\nlat.p50[route=/a]: 0.125\n\
             lat.bucket[route=/a,le=0.125]: 2\nlat.bucket[route=/a,le=0.5]: 1\nlat.nan[route=/a]: 1\n",
            "# HELP lat histogram lat\n# TYPE lat histogram\n\
             lat_bucket{route=\"/a\",le=\"0.125\"} 2\nlat_bucket{route=\"/a\",le=\"0.5\"} 3\n\
             lat_bucket{route=\"/a\",le=\"+Inf\"} 3\nlat_sum{route=\"/a\"} 0.75\nlat_count{route=\"/a\"} 3\n\
             # HELP lat_max histogram lat.max\n# TYPE lat_max gauge\nlat_max{route=\"/a\"} 0.5\n\
             # HELP lat_min histogram lat.min\n# TYPE lat_min gauge\nlat_min{route=\"/a\"} 0.125\n\
             # HELP lat_nan_total histogram lat.nan\n# TYPE lat_nan_total counter\nlat_nan_total{route=\"/a\"} 1\n\
             # HELP lat_p50 histogram lat.p50\n# TYPE lat_p50 gauge\nlat_p50{route=\"/a\"} 0.125\n",
        ),
        (
            "negative and overflow buckets; a plain stat in the family is renamed \
             (a gauge; the histogram's own name as a plain line is of no known kind)",
            "#histogram d: 1\nd.count: 4\nd.sum: 1e30\nd.bucket[le=-1.0]: 1\nd.bucket[le=2.0]: 2\nd.bucket[le=inf]: 1\nd: 5\nd_count: 6\n",
            "# HELP d histogram d\n# TYPE d histogram\nd_bucket{le=\"-1.0\"} 1\nd_bucket{le=\"2.0\"} 3\n\
             d_bucket{le=\"+Inf\"} 4\nd_sum 1e30\nd_count 4\n\
             # HELP d_count_value stat d_count\n# TYPE d_count_value gauge\nd_count_value 6\n\
             # HELP d_value stat d\n# TYPE d_value untyped\nd_value 5\n",
        ),
        (
            "two histograms with one Prometheus name are told apart",
            "#histogram a.b: 1\n#histogram a_b: 1\na.b.count: 1\na.b.sum: 1\na.b.bucket[le=1.0]: 1\n\
             a_b.count: 1\na_b.sum: 2\na_b.bucket[le=2.0]: 1\n",
            "# HELP a_b histogram a.b; histogram a_b\n# TYPE a_b histogram\n\
             a_b_bucket{le=\"1.0\",stats_pipe_name=\"a.b\"} 1\na_b_bucket{le=\"+Inf\",stats_pipe_name=\"a.b\"} 1\n\
             a_b_sum{stats_pipe_name=\"a.b\"} 1\na_b_count{stats_pipe_name=\"a.b\"} 1\n\
             a_b_bucket{le=\"2.0\",stats_pipe_name=\"a_b\"} 1\na_b_bucket{le=\"+Inf\",stats_pipe_name=\"a_b\"} 1\n\
             a_b_sum{stats_pipe_name=\"a_b\"} 2\na_b_count{stats_pipe_name=\"a_b\"} 1\n",
        ),
    ];
    for (what, pipe, want) in cases {
        assert_eq!(typed(pipe), want, "{what}");
    }
}

#[test]
fn pass_adds_own_gauges() {
    let source = |status| Source {
        path: PathBuf::from("/d/1.stats"),
        pid: Some(1),
        status,
        snapshot: Snapshot::new(),
        kinds: Default::default(),
        header: None,
        foreign: false,
        lines: 0,
        bad_lines: 2,
        first_errors: Vec::new(),
        attempts: 1,
        bytes: 0,
        last_seen: None,
    };
    let pass = Pass {
        started: SystemTime::now(),
        duration: Duration::from_millis(5),
        sources: vec![
            source(Status::Ok),
            source(Status::Ok),
            source(Status::Refused(RefuseReason::Symlink)),
        ],
        merged: snapshot(&[("stats_pipe_bad_lines", Value::Int(9))]),
        kinds: Default::default(),
    };
    let got = text(render(&pass));
    assert!(got.contains("# TYPE stats_pipe_sources gauge\n"), "{got}");
    assert!(
        got.contains("stats_pipe_sources{status=\"ok\"} 2\n"),
        "{got}"
    );
    assert!(
        got.contains("stats_pipe_sources{status=\"refused\"} 1\n"),
        "{got}"
    );
    assert!(
        got.contains("stats_pipe_sources{status=\"stale\"} 0\n"),
        "{got}"
    );
    assert!(
        got.contains("stats_pipe_pass_duration_seconds 0.005\n"),
        "{got}"
    );
    // A stat with the same name as an own gauge: both kept, told apart.
    assert!(got.contains("# TYPE stats_pipe_bad_lines gauge\n"), "{got}");
    assert!(
        got.contains("stats_pipe_bad_lines{stats_pipe_name=\"stats_pipe_bad_lines\"} 9\n"),
        "{got}"
    );
    assert!(
        got.contains("stats_pipe_bad_lines{stats_pipe_name=\"#stats_pipe_bad_lines\"} 6\n"),
        "{got}"
    );
}

/// A source read `Ok` from `text` (a foreign one has no metadata).
fn source(pid: u32, foreign: bool, text: &str) -> Source {
    let (snapshot, kinds, errors) = Snapshot::parse_with_kinds(text.as_bytes(), 4096);
    assert!(errors.is_empty(), "{errors:?}");
    Source {
        path: PathBuf::from(format!("/d/{pid}.stats")),
        pid: Some(pid),
        status: Status::Ok,
        snapshot,
        kinds,
        header: None,
        foreign,
        lines: 0,
        bad_lines: 0,
        first_errors: Vec::new(),
        attempts: 1,
        bytes: 0,
        last_seen: None,
    }
}

/// Host-wide, an undeclared stat is a gauge unless a foreign writer
/// served it (then nobody knows its kind); declared kinds always win.
#[test]
fn a_pass_types_our_gauges_and_leaves_foreign_stats_untyped() {
    let ours = source(
        10,
        false,
        "#counter requests: 1\nrequests: 5\nqueue: 2\nshared: 1\n",
    );
    let foreign = source(11, true, "requests: 7\nshared: 3\nlegacy: 4\n");
    let (merged, kinds) = {
        let text = "#counter requests: 1\nrequests: 12\nqueue: 2\nshared: 4\nlegacy: 4\n";
        let (merged, kinds, _) = Snapshot::parse_with_kinds(text.as_bytes(), 4096);
        (merged, kinds)
    };
    let pass = Pass {
        started: SystemTime::now(),
        duration: Duration::from_millis(1),
        sources: vec![ours.clone(), foreign.clone()],
        merged,
        kinds,
    };
    let got = text(render(&pass));
    for want in [
        "# TYPE requests_total counter\nrequests_total 12\n",
        "# TYPE queue gauge\nqueue 2\n",
        "# TYPE shared untyped\nshared 4\n",
        "# TYPE legacy untyped\nlegacy 4\n",
    ] {
        assert!(got.contains(want), "{want:?} in\n{got}");
    }
    // One source: ours typed by its declarations, a foreign one untyped.
    let one = text(render_source(&ours));
    assert!(one.contains("# TYPE shared gauge\nshared 1\n"), "{one}");
    assert!(one.contains("# TYPE requests_total counter\n"), "{one}");
    let one = text(render_source(&foreign));
    assert!(
        one.contains("# TYPE requests untyped\nrequests 7\n"),
        "{one}"
    );
    assert!(one.contains("# TYPE shared untyped\nshared 3\n"), "{one}");
}

/// Names the reader refuses (issue 12) still come out clean if a
/// snapshot holds them: a control character in a label value or the
/// HELP text is `_`, in a metric or label name it is a separator.
#[test]
fn control_characters_never_reach_the_output() {
    let got = text(render_snapshot(&snapshot(&[
        ("x[path=a\tb\x7fc\u{9b}d\re]", Value::Int(1)),
        ("tab\tname\x0b[k\0ey=v]", Value::Int(2)),
        ("nul\0", Value::Int(3)),
    ])));
    assert_eq!(
        got,
        "# HELP nul stat nul_\n# TYPE nul untyped\nnul 3\n\
         # HELP tab_name stat tab_name_\n# TYPE tab_name untyped\ntab_name{k_ey=\"v\"} 2\n\
         # HELP x stat x\n# TYPE x untyped\nx{path=\"a_b_c_d_e\"} 1\n"
    );
    assert!(!super::super::holds_raw_control(got.as_bytes()));
}

proptest::proptest! {
    /// Whatever the names, the text holds no byte below 0x20 but the
    /// line ends, no DEL and no C1 control.
    #[test]
    fn no_raw_control_byte_for_any_name(
        names in proptest::collection::vec(
            "[a-z \\x00-\\x1f\\x7f\\u{80}-\\u{a0}\\[\\]=,\\\\\"#]{0,16}|\\PC{0,8}|(?s:.{0,8})",
            1..6,
        )
    ) {
        let pairs: Vec<(&str, Value)> = names.iter().map(|n| (n.as_str(), Value::Int(1))).collect();
        let got = render_snapshot(&snapshot(&pairs));
        proptest::prop_assert!(
            !super::super::holds_raw_control(&got),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }
}
