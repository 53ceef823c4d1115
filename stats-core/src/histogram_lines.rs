//! A histogram as plain `name: value` lines, and back.
//!
//! A histogram `latency[route=/a]` renders as
//!
//! ```text
//! latency.count[route=/a]: 3
//! latency.sum[route=/a]: 0.75
//! latency.min[route=/a]: 0.125
//! latency.max[route=/a]: 0.5
//! latency.p50[route=/a]: 0.125
//! latency.p90[route=/a]: 0.5
//! latency.p99[route=/a]: 0.5
//! latency.bucket[route=/a,le=0.125]: 1
//! latency.bucket[route=/a,le=0.5]: 2
//! ```
//!
//! Buckets are the shared layout of [`crate::buckets`]; a `.bucket` line
//! holds the count of values in that one bucket (not cumulative), and only
//! non-empty buckets are written, so a latency histogram spanning two
//! decades takes about 35 lines. `.min`, `.max` and the quantiles appear
//! once something was recorded; `.nan` once a NaN was. `.min`, `.max` and
//! `.sum` are integers while only integers were recorded; quantiles are
//! always floats.

use std::collections::HashMap;

use crate::buckets;
use crate::format::{parse_value, write_line};
use crate::histogram::{Distribution, QUANTILES};
use crate::tags;
use crate::value::Value;

/// One line of a histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `.count`
    Count,
    /// `.sum`
    Sum,
    /// `.min`
    Min,
    /// `.max`
    Max,
    /// `.p50`, `.p90`, `.p99`: derived, recomputed after a merge.
    Quantile,
    /// `.nan`
    Nan,
    /// `.bucket[le=..]`, with the bucket index.
    Bucket(usize),
}

const SUFFIXES: [(&str, Part); 6] = [
    ("count", Part::Count),
    ("sum", Part::Sum),
    ("min", Part::Min),
    ("max", Part::Max),
    ("nan", Part::Nan),
    ("p50", Part::Quantile),
];

fn tag_refs(tags: &[(String, String)]) -> Vec<(&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Appends the lines of the histogram `name` holding `d`.
pub fn render(name: &str, d: &Distribution, buf: &mut Vec<u8>) {
    let split = tags::split(name);
    let pairs = tag_refs(&split.tags);
    let line = |suffix: &str| tags::join(&format!("{}.{suffix}", split.base), &pairs);
    let extreme = |v: f64| {
        if d.is_float {
            Value::Float(v)
        } else {
            Value::Int(v as i64)
        }
    };
    write_line(buf, &line("count"), Value::from(d.count));
    write_line(buf, &line("sum"), d.sum);
    if d.count > 0 {
        write_line(buf, &line("min"), extreme(d.min));
        write_line(buf, &line("max"), extreme(d.max));
        for (q, suffix) in QUANTILES {
            if let Some(v) = d.quantile(q) {
                write_line(buf, &line(suffix), Value::Float(v));
            }
        }
    }
    if d.nan > 0 {
        write_line(buf, &line("nan"), Value::from(d.nan));
    }
    let bucket_base = format!("{}.bucket", split.base);
    for (index, &n) in d.buckets.iter().enumerate().filter(|(_, n)| **n > 0) {
        let le = Value::Float(buckets::upper_bound(index)).to_string();
        let mut bucket_pairs = pairs.clone();
        bucket_pairs.push(("le", &le));
        write_line(
            buf,
            &tags::join(&bucket_base, &bucket_pairs),
            Value::from(n),
        );
    }
}

/// Which histogram a line belongs to and which part of it it is, judged by
/// its shape only (the caller checks the histogram was declared).
pub fn classify(line_name: &str) -> Option<(String, Part)> {
    let split = tags::split(line_name);
    if let Some(base) = split.base.strip_suffix(".bucket") {
        let (last_key, last_value) = split.tags.last()?;
        if last_key != "le" {
            return None;
        }
        let le = parse_value(last_value)?.as_f64();
        let index = buckets::index_of_upper_bound(le)?;
        let pairs = tag_refs(&split.tags[..split.tags.len() - 1]);
        return Some((tags::join(base, &pairs), Part::Bucket(index)));
    }
    let (base, suffix) = split.base.rsplit_once('.')?;
    let part = SUFFIXES
        .iter()
        .find(|(s, _)| *s == suffix)
        .map(|(_, p)| *p)
        .or_else(|| {
            QUANTILES
                .iter()
                .any(|(_, s)| *s == suffix)
                .then_some(Part::Quantile)
        })?;
    Some((tags::join(base, &tag_refs(&split.tags)), part))
}

/// Rebuilds distributions from the lines of one source.
#[derive(Debug, Default)]
pub struct Rebuilder {
    found: HashMap<String, Distribution>,
}

impl Rebuilder {
    /// Nothing yet.
    pub fn new() -> Rebuilder {
        Rebuilder::default()
    }

    /// Takes the line if it is part of a histogram for which `is_histogram`
    /// says yes; returns whether it did.
    pub fn take(
        &mut self,
        line_name: &str,
        value: Value,
        is_histogram: impl Fn(&str) -> bool,
    ) -> bool {
        let Some((histogram, part)) = classify(line_name) else {
            return false;
        };
        if !is_histogram(&histogram) {
            return false;
        }
        let d = self.found.entry(histogram).or_default();
        let whole = |v: Value| match v {
            Value::Int(i) => u64::try_from(i).unwrap_or(0),
            Value::Float(f) if f >= 0.0 => f as u64,
            Value::Float(_) => 0,
        };
        match part {
            Part::Count => d.count = whole(value),
            Part::Sum => {
                d.sum = value;
                d.is_float |= value.is_float();
            }
            Part::Min => {
                d.min = value.as_f64();
                d.is_float |= value.is_float();
            }
            Part::Max => {
                d.max = value.as_f64();
                d.is_float |= value.is_float();
            }
            Part::Quantile => {}
            Part::Nan => d.nan = whole(value),
            Part::Bucket(index) => d.buckets[index] = whole(value),
        }
        true
    }

    /// The histograms found, by name.
    pub fn finish(self) -> HashMap<String, Distribution> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{Histogram, HistogramCell};
    use std::sync::Arc;

    fn histogram(name: &str) -> Histogram {
        Histogram::new(Arc::new(HistogramCell::new(name.into())))
    }

    #[test]
    fn renders_the_documented_lines() {
        let h = histogram("latency[route=/a]");
        for v in [0.125, 0.5, 0.125] {
            h.record_float(v);
        }
        let mut buf = Vec::new();
        render(h.name(), &h.distribution(), &mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "latency.count[route=/a]: 3\nlatency.sum[route=/a]: 0.75\nlatency.min[route=/a]: 0.125\n\
             latency.max[route=/a]: 0.5\nlatency.p50[route=/a]: 0.125\nlatency.p90[route=/a]: 0.5\n\
             latency.p99[route=/a]: 0.5\nlatency.bucket[route=/a,le=0.125]: 2\n\
             latency.bucket[route=/a,le=0.5]: 1\n"
        );
    }

    #[test]
    fn lines_rebuild_the_same_distribution() {
        for name in ["plain", "with space[k=v,x=a\\,b]"] {
            let h = histogram(name);
            for i in -50..500i64 {
                h.record(i * i * 37);
            }
            h.record_float(f64::NAN);
            h.record_float(1e30);
            let mut buf = Vec::new();
            render(h.name(), &h.distribution(), &mut buf);
            let (snapshot, errors) = crate::Snapshot::parse(&buf, 4096);
            assert!(errors.is_empty());
            let mut rebuilder = Rebuilder::new();
            for (line, value) in snapshot.iter() {
                assert!(rebuilder.take(line, value, |n| n == name), "{line}");
            }
            let found = rebuilder.finish();
            assert_eq!(found.get(name), Some(&h.distribution()), "{name}");
        }
    }

    #[test]
    fn classify_ignores_other_shapes() {
        assert_eq!(classify("requests"), None);
        assert_eq!(classify("a.bucket[le=1.1]"), None, "not a bucket bound");
        assert_eq!(classify("a.bucket[x=1]"), None);
        assert_eq!(classify("a.p50"), Some(("a".into(), Part::Quantile)));
        assert_eq!(
            classify("a.b.count[k=v]"),
            Some(("a.b[k=v]".into(), Part::Count))
        );
    }
}
