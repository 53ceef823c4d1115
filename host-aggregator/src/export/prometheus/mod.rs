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
    fn info(&self) -> &'static super::FormatInfo {
        &super::FormatInfo {
            name: "prometheus",
            about: "Prometheus text exposition",
            path: Some("/metrics"),
            content_type: CONTENT_TYPE,
        }
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
    super::escape_with(buf, text, |buf, bytes, at| {
        match bytes[at] {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'"' if quote => buf.extend_from_slice(b"\\\""),
            _ => return false,
        }
        true
    });
}

#[cfg(test)]
mod tests;
