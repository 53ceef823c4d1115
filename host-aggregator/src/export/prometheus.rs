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
//! - A metric name starting with `process_` gets `stats_pipe_` in front:
//!   `process.cpu_seconds` → `stats_pipe_process_cpu_seconds_total`. Every
//!   Prometheus client exports the scraped process's own figures as
//!   `process_cpu_seconds_total`, `process_open_fds`, ...; ours are sums
//!   over every process on the host (FORMAT.md, "Process stats"), and
//!   under the standard names they would read as the aggregator's own.
//! - Label name ([`label_name`]): the same character mapping, case kept; a
//!   leading `__` (reserved by Prometheus) becomes `_`, and names starting
//!   with `stats_pipe_` (reserved here, see below) get a `_` in front. When
//!   two tags of one stat map to the same label name, the first is kept.
//! - Label values are any text, escaped as the format wants (`\\`, `\"`,
//!   `\n`); any other control character (the reader already refuses names
//!   holding one) becomes `_`, in label values and `# HELP` text alike.
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
//! Types come from the kinds our writers declare ([`Pass::kinds`], see
//! FORMAT.md, "Metric kinds"):
//!
//! - A declared counter is a `counter`, named with a `_total` suffix as
//!   Prometheus wants (added unless the mapped name already ends so):
//!   `requests` → `requests_total`.
//! - A `max` stat (a task's `.highwater`) is a `gauge`.
//! - A histogram `lat[route=/a]` is a `histogram` family `lat`: its sparse,
//!   per-bucket `.bucket` lines become cumulative
//!   `lat_bucket{route="/a",le="..."}` series, one per non-empty bucket
//!   (its upper bound) plus `le="+Inf"` (equal to the count), then
//!   `lat_sum` and `lat_count`. Its `.min`, `.max`, `.p50`, `.p90` and
//!   `.p99` lines are `gauge` families of their own (`lat_min`, `lat_p99`,
//!   ...), and `.nan` a counter `lat_nan_total`. `histogram_quantile()` over
//!   the buckets agrees with our `.pNN` within the bucket width (11.1 %).
//! - An undeclared stat of our writers is a `gauge`: they declare every
//!   other kind.
//! - A stat a foreign writer served (it declares nothing, so the aggregator
//!   cannot tell its counters from its gauges) is `untyped`, and so is
//!   every stat of [`render_snapshot`], whose origin is unknown.
//! - A gauge whose metric name ends in `_total`, `_count`, `_sum` or
//!   `_bucket` is written `untyped` too, under its own name: those suffixes
//!   promise a counter or a histogram's sample, and `promtool check
//!   metrics` flags them on a gauge, while renaming it would break the
//!   queries that use its name. Prometheus treats `untyped` like a gauge.
//!
//! A plain stat whose metric name would land in a histogram's family (a
//! foreign `lat` beside our histogram `lat`) gets `_value` appended, so the
//! family stays a valid histogram. Each family has a `# HELP` naming the
//! stats it came from. Integers are written exactly, floats as the shortest
//! text that reads back to the same bits (ryu), NaN and infinities as `NaN`,
//! `+Inf`, `-Inf`.
//!
//! The aggregator's own figures are added by [`render`] as `stats_pipe_*`
//! gauges: sources by status, bad lines, and the pass duration.

use std::borrow::Cow;
use std::collections::HashSet;

use stats_core::histogram_lines::{Part, classify};
use stats_core::kinds::{Kinds, WireKind};
use stats_core::{Snapshot, Value};

use crate::{Pass, Source, Status};

/// The Prometheus text exposition format, served at `/metrics`.
pub struct Prometheus;

impl super::Format for Prometheus {
    fn name(&self) -> &'static str {
        "prometheus"
    }
    fn about(&self) -> &'static str {
        "Prometheus text exposition"
    }
    fn path(&self) -> Option<&'static str> {
        Some("/metrics")
    }
    fn content_type(&self) -> &'static str {
        CONTENT_TYPE
    }
    fn render(&self, pass: &Pass) -> Vec<u8> {
        render(pass)
    }
    fn render_source(&self, _: &Pass, source: &Source) -> Vec<u8> {
        render_source(source)
    }
}

/// The label added to series whose names collide: the original stat name.
pub const NAME_LABEL: &str = "stats_pipe_name";

/// Prefix of label names reserved for the aggregator.
const RESERVED_LABEL_PREFIX: &str = "stats_pipe_";

/// The content type of the text exposition format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The host-wide stats of a pass plus the aggregator's own `stats_pipe_*`
/// gauges.
pub fn render(pass: &Pass) -> Vec<u8> {
    let foreign = pass
        .sources
        .iter()
        .filter(|source| source.foreign && source.status.is_ok())
        .flat_map(|source| source.snapshot.iter().map(|(name, _)| name))
        .collect();
    let undeclared = Undeclared::UntypedIfForeign(foreign);
    let mut series = stat_series(&pass.merged, &pass.kinds, &undeclared);
    for &word in Status::WORDS {
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

/// The stats of one snapshot of unknown origin (any merge), all `untyped`,
/// with no aggregator gauges.
pub fn render_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    write_families(stat_series(snapshot, &Kinds::new(), &Undeclared::Untyped))
}

/// The stats of one snapshot of our writers typed by `kinds` (one
/// process's declarations, or a merge's; undeclared stats are gauges),
/// with no aggregator gauges.
pub fn render_typed(snapshot: &Snapshot, kinds: &Kinds) -> Vec<u8> {
    write_families(stat_series(snapshot, kinds, &Undeclared::Gauge))
}

/// The stats of one source: typed by its declarations if it is one of our
/// writers ([`render_typed`]), all `untyped` if it is foreign
/// ([`render_snapshot`]).
pub fn render_source(source: &Source) -> Vec<u8> {
    if source.foreign {
        render_snapshot(&source.snapshot)
    } else {
        render_typed(&source.snapshot, &source.kinds)
    }
}

/// How a stat that no writer declared is typed.
enum Undeclared<'a> {
    /// A `gauge`: the stats came from our writers, which declare all else.
    Gauge,
    /// `untyped`: the origin is unknown.
    Untyped,
    /// A pass: `untyped` if a foreign source served it, else `gauge`.
    UntypedIfForeign(HashSet<&'a str>),
}

impl Undeclared<'_> {
    /// The `# TYPE` of the undeclared stat `name`.
    fn kind(&self, name: &str) -> &'static str {
        match self {
            Undeclared::Gauge => "gauge",
            Undeclared::Untyped => "untyped",
            Undeclared::UntypedIfForeign(foreign) if foreign.contains(name) => "untyped",
            Undeclared::UntypedIfForeign(_) => "gauge",
        }
    }
}

/// Metric name endings that promise a counter (`_total`) or a histogram's
/// sample; a gauge named so is written `untyped` (see the module docs).
const NOT_GAUGE_SUFFIXES: [&str; 4] = ["_total", "_count", "_sum", "_bucket"];

/// The prefix of single-process figures in every Prometheus client
/// (`process_cpu_seconds_total`, `process_open_fds`, ...).
const PROCESS_PREFIX: &str = "process_";

/// Put in front of metric names that would otherwise start with
/// [`PROCESS_PREFIX`]; also the prefix of the aggregator's own gauges.
const OUR_PREFIX: &str = "stats_pipe_";

/// Maps a stat's base name (its tags removed) to a valid, snake_case metric
/// name, never one of the standard `process_*` names (see the module docs
/// for the rules).
pub fn metric_name(base: &str) -> String {
    let mapped = map_name(base, true);
    if mapped.starts_with(PROCESS_PREFIX) {
        format!("{OUR_PREFIX}{mapped}")
    } else {
        mapped
    }
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
    /// The family (`# TYPE` name): the metric name, or a histogram's name
    /// for its `_bucket`, `_sum` and `_count` samples.
    family: String,
    /// The sample's metric name.
    metric: String,
    /// Label pairs, written order, names unique.
    labels: Vec<(String, String)>,
    /// Labels sorted, for comparing series.
    sorted_labels: Vec<(String, String)>,
    /// The original stat name (a histogram's name for all its samples);
    /// `#...` for the aggregator's own (no stat name starts with `#`, so
    /// these never equal a stat's).
    origin: String,
    help: Cow<'static, str>,
    kind: &'static str,
    /// Order within one histogram: buckets by bound, then `_sum`, `_count`.
    rank: (u8, f64),
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
            family: metric.clone(),
            metric,
            labels,
            sorted_labels,
            origin,
            help,
            kind,
            rank: (0, 0.0),
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

    /// The labels that tell one histogram from another (all but `le`).
    fn group_labels(&self) -> impl Iterator<Item = &(String, String)> {
        let histogram = self.kind == "histogram";
        self.sorted_labels
            .iter()
            .filter(move |(k, _)| !(histogram && k == "le"))
    }
}

/// A stat's base name and tags, as a metric name and labels.
fn metric_and_labels(name: &str) -> (String, Vec<(String, String)>, String) {
    let tagged = stats_core::tags::split(name);
    let mut labels: Vec<(String, String)> = Vec::with_capacity(tagged.tags.len());
    for (key, tag_value) in tagged.tags {
        let key = label_name(&key);
        if !labels.iter().any(|(k, _)| *k == key) {
            labels.push((key, tag_value));
        }
    }
    (metric_name(tagged.base), labels, tagged.base.to_owned())
}

/// One histogram's bucket, sum and count lines, gathered.
#[derive(Default)]
struct HistogramLines {
    /// (bucket index, count in that bucket).
    buckets: Vec<(usize, u64)>,
    sum: Option<Value>,
    count: Option<Value>,
}

fn stat_series(snapshot: &Snapshot, kinds: &Kinds, undeclared: &Undeclared) -> Vec<Series> {
    let mut series = Vec::with_capacity(snapshot.len());
    let mut histograms: std::collections::BTreeMap<String, HistogramLines> = Default::default();
    for (name, value) in snapshot.iter() {
        let (mut metric, labels, base) = metric_and_labels(name);
        let mut help = format!("stat {base}");
        let kind = match kinds.get(name) {
            Some(WireKind::Counter) => "counter",
            Some(WireKind::Max) => "gauge",
            Some(WireKind::Histogram) => "untyped",
            None => match classify(name).filter(|(h, _)| kinds.get(h) == Some(WireKind::Histogram))
            {
                Some((histogram, part)) => {
                    let lines = histograms.entry(histogram).or_default();
                    let whole = |v: Value| u64::try_from(v.as_f64() as i64).unwrap_or(0);
                    match part {
                        Part::Bucket(index) => lines.buckets.push((index, whole(value))),
                        Part::Sum => lines.sum = Some(value),
                        Part::Count => lines.count = Some(value),
                        Part::Min | Part::Max | Part::Quantile | Part::Nan => {
                            help = format!("histogram {base}");
                        }
                    }
                    match part {
                        Part::Bucket(_) | Part::Sum | Part::Count => continue,
                        Part::Nan => "counter",
                        Part::Min | Part::Max | Part::Quantile => "gauge",
                    }
                }
                None => undeclared.kind(name),
            },
        };
        if kind == "counter" && !metric.ends_with("_total") {
            metric.push_str("_total");
        }
        series.push(Series::new(
            metric,
            labels,
            name.to_owned(),
            Cow::Owned(help),
            kind,
            value,
        ));
    }
    let mut families = std::collections::HashSet::new();
    for (histogram, lines) in histograms {
        let (family, labels, base) = metric_and_labels(&histogram);
        families.insert(family.clone());
        histogram_series(&mut series, histogram, lines, family, labels, base);
    }
    // A plain stat named like a histogram's family or one of its samples
    // would make it invalid: rename it.
    let taken = |name: &str| {
        families.contains(name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|f| families.contains(f))
            })
    };
    for one in &mut series {
        if one.kind != "histogram" && taken(&one.family) {
            one.metric.push_str("_value");
            one.family.clone_from(&one.metric);
        }
        if one.kind == "gauge" && NOT_GAUGE_SUFFIXES.iter().any(|s| one.metric.ends_with(s)) {
            one.kind = "untyped";
        }
    }
    series
}

/// Appends a histogram's cumulative `_bucket` series (every non-empty
/// bucket's upper bound, then `+Inf`), `_sum` and `_count`.
fn histogram_series(
    series: &mut Vec<Series>,
    histogram: String,
    mut lines: HistogramLines,
    family: String,
    labels: Vec<(String, String)>,
    base: String,
) {
    lines.buckets.sort_unstable();
    let bucketed: u64 = lines.buckets.iter().map(|(_, n)| n).sum();
    let count = lines.count.unwrap_or(Value::from(bucketed));
    let mut sample = |suffix: &str, extra: Option<f64>, rank: u8, value: Value| {
        let mut labels = labels.clone();
        if let Some(le) = extra {
            let mut text = Vec::new();
            write_value(&mut text, Value::Float(le));
            labels.push(("le".into(), String::from_utf8_lossy(&text).into_owned()));
        }
        let mut one = Series::new(
            format!("{family}_{suffix}"),
            labels,
            histogram.clone(),
            Cow::Owned(format!("histogram {base}")),
            "histogram",
            value,
        );
        one.family.clone_from(&family);
        one.rank = (rank, extra.unwrap_or(0.0));
        series.push(one);
    };
    let mut cumulative = 0u64;
    for (index, n) in lines.buckets {
        cumulative += n;
        let le = stats_core::buckets::upper_bound(index);
        if le < f64::INFINITY {
            sample("bucket", Some(le), 0, Value::from(cumulative));
        }
    }
    sample("bucket", Some(f64::INFINITY), 0, count);
    sample("sum", None, 1, lines.sum.unwrap_or(Value::Int(0)));
    sample("count", None, 2, count);
}

fn write_families(mut series: Vec<Series>) -> Vec<u8> {
    // Series that would be the same (name and labels) get their origin as
    // one more label, so nothing is dropped.
    // A histogram's samples collide as one: by its family and labels but
    // `le`, so a histogram keeps one label set across its samples.
    let key = |one: &Series| -> (String, Vec<(String, String)>) {
        let name = if one.kind == "histogram" {
            &one.family
        } else {
            &one.metric
        };
        (name.clone(), one.group_labels().cloned().collect())
    };
    let mut origins: std::collections::HashMap<_, std::collections::HashSet<&str>> =
        std::collections::HashMap::with_capacity(series.len());
    for one in &series {
        origins.entry(key(one)).or_default().insert(&one.origin);
    }
    let colliding: Vec<bool> = series
        .iter()
        .map(|one| origins[&key(one)].len() > 1)
        .collect();
    for (one, collides) in series.iter_mut().zip(colliding) {
        if collides {
            let origin = one.origin.clone();
            one.labels.push((NAME_LABEL.into(), origin));
        }
    }
    series.sort_by(|a, b| {
        a.family
            .cmp(&b.family)
            .then_with(|| a.group_labels().cmp(b.group_labels()))
            .then_with(|| a.origin.cmp(&b.origin))
            .then_with(|| a.rank.0.cmp(&b.rank.0))
            .then_with(|| a.rank.1.total_cmp(&b.rank.1))
    });

    let mut buf = Vec::with_capacity(series.len() * 64);
    let mut start = 0;
    while start < series.len() {
        let family = &series[start].family;
        let end = start + series[start..].partition_point(|s| s.family == *family);
        let members = &series[start..end];
        write_family_header(&mut buf, members);
        for one in members {
            write_sample(&mut buf, one);
        }
        start = end;
    }
    buf
}

/// Families in a HELP line name at most this many of their source stats.
const HELP_NAMES: usize = 4;

fn write_family_header(buf: &mut Vec<u8>, family: &[Series]) {
    let metric = family[0].family.as_bytes();
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
/// Any other control character (C0, DEL, C1) becomes `_`: the format has
/// no escape for them, and raw they would reach terminals and parsers that
/// split on them (see [`super::control_len`]).
fn escape(buf: &mut Vec<u8>, text: &str, quote: bool) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        let mut len = 1;
        match byte {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'"' if quote => buf.extend_from_slice(b"\\\""),
            _ => match super::control_len(bytes, at) {
                0 => buf.push(byte),
                control => {
                    buf.push(b'_');
                    len = control;
                }
            },
        }
        at += len;
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
}
