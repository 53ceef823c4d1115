//! Prometheus text exposition (format 0.0.4) of a pass: every stat becomes a
//! sample with a valid metric name, its `[k=v]` tags become labels, and
//! collisions are resolved without dropping anything.
//!
//! # Name mapping
//!
//! - A stat name is split into a base and tags ([`stats_core::tags::split`]).
//! - Metric name ([`metric_name`]): every run of characters outside
//!   `[A-Za-z0-9_]` (spaces, `.`, `-`, `[`, non-ASCII letters, and `:`, which
//!   Prometheus reserves for recording rules) becomes one `_`; such
//!   underscores at the start or end are dropped; camelCase becomes
//!   snake_case (`requestCount` → `request_count`, `HTTPServer` →
//!   `http_server`) because that is what Prometheus names look like and what
//!   `promtool check metrics` demands; a leading digit gets a `_` in front;
//!   nothing left gives `_`. So `load avg` → `load_avg`, `a.b.c` → `a_b_c`,
//!   `host:port` → `host_port`, `another[one]` → `another_one`.
//! - Label name ([`label_name`]): the same character mapping, case kept; a
//!   leading `__` (reserved by Prometheus) becomes `_`, and names starting
//!   with `stats_pipe_` (reserved here, see below) get a `_` in front. When
//!   two tags of one stat map to the same label name, the first is kept.
//! - Label values are any text, escaped as the format wants (`\\`, `\"`,
//!   `\n`).
//!
//! # Collisions
//!
//! Two different stats can map to the same metric name and label set
//! (`a.b` and `a_b`, `x[k=v]` and `x [k=v]`). Then every one of them gets one
//! more label, `stats_pipe_name`, holding its original stat name, so each
//! stays a distinct series and nothing is dropped; stats that do not collide
//! keep their plain labels. Output is sorted by metric name, then labels,
//! then original name, so it is the same for the same input.
//!
//! # Types and values
//!
//! Stats are `untyped` (stats-pipe does not yet say which stats are
//! counters); each family has a `# HELP` naming the stats it came from.
//! Integers are written exactly, floats as the shortest text that reads back
//! to the same bits (ryu), NaN and infinities as `NaN`, `+Inf`, `-Inf`.
//!
//! The aggregator's own figures are added by [`render`] as `stats_pipe_*`
//! gauges: sources by status, bad lines, and the pass duration.

use std::borrow::Cow;

use stats_core::{Snapshot, Value};

use super::STATUS_WORDS;
use crate::Pass;

/// The label added to series whose names collide: the original stat name.
pub const NAME_LABEL: &str = "stats_pipe_name";

/// Prefix of label names reserved for the aggregator.
const RESERVED_LABEL_PREFIX: &str = "stats_pipe_";

/// The content type of the text exposition format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The host-wide stats of a pass plus the aggregator's own `stats_pipe_*`
/// gauges.
pub fn render(pass: &Pass) -> Vec<u8> {
    let mut series = stat_series(&pass.merged);
    for word in STATUS_WORDS {
        let count = pass
            .sources
            .iter()
            .filter(|s| s.status.as_str() == word)
            .count();
        series.push(Series::own(
            "stats_pipe_sources",
            vec![("status".into(), word.into())],
            Value::from(count),
            "Sources found by the last read pass, by status.",
        ));
    }
    let bad_lines: u64 = pass.sources.iter().map(|s| s.bad_lines).sum();
    series.push(Series::own(
        "stats_pipe_bad_lines",
        Vec::new(),
        Value::from(bad_lines),
        "Lines skipped as unreadable by the last read pass, over all sources.",
    ));
    series.push(Series::own(
        "stats_pipe_pass_duration_seconds",
        Vec::new(),
        Value::Float(pass.duration.as_secs_f64()),
        "How long the last read pass took.",
    ));
    write_families(series)
}

/// The stats of one snapshot (one process, or any merge), with no
/// aggregator gauges.
pub fn render_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    write_families(stat_series(snapshot))
}

/// Maps a stat's base name (its tags removed) to a valid, snake_case metric
/// name (see the module docs for the rules).
pub fn metric_name(base: &str) -> String {
    map_name(base, true)
}

/// Maps a tag key to a valid label name (see the module docs for the rules).
pub fn label_name(key: &str) -> String {
    let mapped = map_name(key, false);
    if mapped.starts_with("__") {
        format!("_{}", mapped.trim_start_matches('_'))
    } else if mapped.starts_with(RESERVED_LABEL_PREFIX) {
        format!("_{mapped}")
    } else {
        mapped
    }
}

fn map_name(text: &str, snake_case: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 4);
    let mut pending_separator = false;
    for (i, &c) in chars.iter().enumerate() {
        if !(c.is_ascii_alphanumeric() || c == '_') {
            pending_separator = true;
            continue;
        }
        if pending_separator && !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        pending_separator = false;
        if snake_case && c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let starts_word = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if starts_word && !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push('_');
    } else if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// One sample line to be.
struct Series {
    metric: String,
    /// Label pairs, written order, names unique.
    labels: Vec<(String, String)>,
    /// Labels sorted, for comparing series.
    sorted_labels: Vec<(String, String)>,
    /// The original stat name; `#...` for the aggregator's own (no stat
    /// name starts with `#`, so these never equal a stat's).
    origin: String,
    help: Cow<'static, str>,
    kind: &'static str,
    value: Value,
}

impl Series {
    fn new(
        metric: String,
        labels: Vec<(String, String)>,
        origin: String,
        help: Cow<'static, str>,
        kind: &'static str,
        value: Value,
    ) -> Series {
        let mut sorted_labels = labels.clone();
        sorted_labels.sort();
        Series {
            metric,
            labels,
            sorted_labels,
            origin,
            help,
            kind,
            value,
        }
    }

    fn own(
        metric: &str,
        labels: Vec<(String, String)>,
        value: Value,
        help: &'static str,
    ) -> Series {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let origin = stats_core::tags::join(&format!("#{metric}"), &pairs);
        Series::new(
            metric.into(),
            labels,
            origin,
            Cow::Borrowed(help),
            "gauge",
            value,
        )
    }

    fn same_series(&self, other: &Series) -> bool {
        self.metric == other.metric && self.sorted_labels == other.sorted_labels
    }
}

fn stat_series(snapshot: &Snapshot) -> Vec<Series> {
    snapshot
        .iter()
        .map(|(name, value)| {
            let tagged = stats_core::tags::split(name);
            let mut labels: Vec<(String, String)> = Vec::with_capacity(tagged.tags.len());
            for (key, tag_value) in tagged.tags {
                let key = label_name(&key);
                if !labels.iter().any(|(k, _)| *k == key) {
                    labels.push((key, tag_value));
                }
            }
            Series::new(
                metric_name(tagged.base),
                labels,
                name.to_owned(),
                Cow::Owned(format!("stat {}", tagged.base)),
                "untyped",
                value,
            )
        })
        .collect()
}

fn write_families(mut series: Vec<Series>) -> Vec<u8> {
    series.sort_by(|a, b| {
        (&a.metric, &a.sorted_labels, &a.origin).cmp(&(&b.metric, &b.sorted_labels, &b.origin))
    });
    let mut start = 0;
    while start < series.len() {
        let end = start + series[start..].partition_point(|s| s.same_series(&series[start]));
        if end - start > 1 {
            for one in &mut series[start..end] {
                let origin = one.origin.clone();
                one.labels.push((NAME_LABEL.into(), origin));
            }
        }
        start = end;
    }

    let mut buf = Vec::with_capacity(series.len() * 64);
    let mut start = 0;
    while start < series.len() {
        let metric = &series[start].metric;
        let end = start + series[start..].partition_point(|s| s.metric == *metric);
        let family = &series[start..end];
        write_family_header(&mut buf, family);
        for one in family {
            write_sample(&mut buf, one);
        }
        start = end;
    }
    buf
}

/// Families in a HELP line name at most this many of their source stats.
const HELP_NAMES: usize = 4;

fn write_family_header(buf: &mut Vec<u8>, family: &[Series]) {
    let metric = family[0].metric.as_bytes();
    buf.extend_from_slice(b"# HELP ");
    buf.extend_from_slice(metric);
    buf.push(b' ');
    let mut helps: Vec<&str> = Vec::new();
    for one in family {
        if !helps.contains(&one.help.as_ref()) {
            helps.push(&one.help);
        }
    }
    for (i, help) in helps.iter().take(HELP_NAMES).enumerate() {
        if i > 0 {
            buf.extend_from_slice(b"; ");
        }
        escape(buf, help, false);
    }
    if helps.len() > HELP_NAMES {
        buf.extend_from_slice(b"; ...");
    }
    buf.extend_from_slice(b"\n# TYPE ");
    buf.extend_from_slice(metric);
    buf.push(b' ');
    let kind = family[0].kind;
    let same_kind = family.iter().all(|s| s.kind == kind);
    buf.extend_from_slice(if same_kind { kind } else { "untyped" }.as_bytes());
    buf.push(b'\n');
}

fn write_sample(buf: &mut Vec<u8>, one: &Series) {
    buf.extend_from_slice(one.metric.as_bytes());
    if !one.labels.is_empty() {
        buf.push(b'{');
        for (i, (key, value)) in one.labels.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(b"=\"");
            escape(buf, value, true);
            buf.push(b'"');
        }
        buf.push(b'}');
    }
    buf.push(b' ');
    write_value(buf, one.value);
    buf.push(b'\n');
}

/// Appends a sample value: integers exact, floats shortest round-trip,
/// `NaN`, `+Inf`, `-Inf`.
pub fn write_value(buf: &mut Vec<u8>, value: Value) {
    super::write_number(buf, value, ["NaN", "+Inf", "-Inf"]);
}

/// Escapes a label value (`\\`, `\"`, `\n`) or, with `quote` false, HELP
/// text (only `\\` and `\n`: the format wants quotes there as they are).
fn escape(buf: &mut Vec<u8>, text: &str, quote: bool) {
    for &byte in text.as_bytes() {
        match byte {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'"' if quote => buf.extend_from_slice(b"\\\""),
            _ => buf.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert!(
            got.contains("# TYPE stats_pipe_bad_lines untyped\n"),
            "{got}"
        );
        assert!(
            got.contains("stats_pipe_bad_lines{stats_pipe_name=\"stats_pipe_bad_lines\"} 9\n"),
            "{got}"
        );
        assert!(
            got.contains("stats_pipe_bad_lines{stats_pipe_name=\"#stats_pipe_bad_lines\"} 6\n"),
            "{got}"
        );
    }
}
