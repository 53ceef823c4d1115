//! Merging snapshots from many processes into one host-wide snapshot.

use std::collections::HashMap;

use crate::snapshot::{Entry, Snapshot};
use crate::value::Value;

/// How values of one stat from several sources combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rule {
    /// pipestatic's rule: the sum (int stays int, overflow or any float makes
    /// a float).
    #[default]
    Sum,
    /// The smallest value (NaN is ignored unless every value is NaN).
    Min,
    /// The largest value (NaN is ignored unless every value is NaN).
    Max,
    /// The value from the source added last.
    Last,
}

impl Rule {
    /// Combines an accumulated value with one more.
    pub fn combine(self, acc: Value, next: Value) -> Value {
        match self {
            Rule::Sum => acc.sum(next),
            Rule::Min => pick(acc, next, |a, b| b < a),
            Rule::Max => pick(acc, next, |a, b| b > a),
            Rule::Last => next,
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Rule, String> {
        match text {
            "sum" => Ok(Rule::Sum),
            "min" => Ok(Rule::Min),
            "max" => Ok(Rule::Max),
            "last" => Ok(Rule::Last),
            other => Err(format!(
                "unknown merge rule {other:?} (expected sum, min, max or last)"
            )),
        }
    }
}

/// Keeps the type of the chosen value, so a float stays a float.
fn pick(acc: Value, next: Value, better: impl Fn(f64, f64) -> bool) -> Value {
    let (a, b) = (acc.as_f64(), next.as_f64());
    let chosen = if a.is_nan() || (!b.is_nan() && better(a, b)) {
        next
    } else {
        acc
    };
    // "Once a float, always a float": if either side was a float, so is the result.
    if acc.is_float() || next.is_float() {
        Value::Float(chosen.as_f64())
    } else {
        chosen
    }
}

/// Accumulates stats from any number of sources.
#[derive(Debug, Default)]
pub struct Merger {
    totals: HashMap<Box<str>, Value, foldhash::fast::RandomState>,
}

impl Merger {
    /// An empty merger.
    pub fn new() -> Merger {
        Merger::default()
    }

    /// Adds one stat with [`Rule::Sum`].
    pub fn add(&mut self, name: &str, value: Value) {
        self.add_with(name, value, Rule::Sum);
    }

    /// Adds one stat, combining with what is there by `rule`.
    pub fn add_with(&mut self, name: &str, value: Value, rule: Rule) {
        match self.totals.get_mut(name) {
            Some(acc) => *acc = rule.combine(*acc, value),
            None => {
                self.totals.insert(name.into(), value);
            }
        }
    }

    /// Adds every stat of a snapshot with [`Rule::Sum`].
    pub fn add_snapshot(&mut self, snapshot: &Snapshot) {
        for (name, value) in snapshot.iter() {
            self.add(name, value);
        }
    }

    /// Number of distinct stats so far.
    pub fn len(&self) -> usize {
        self.totals.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    /// The merged snapshot, sorted by name.
    pub fn finish(self) -> Snapshot {
        let mut entries: Vec<Entry> = self
            .totals
            .into_iter()
            .map(|(name, value)| Entry {
                name: name.into(),
                value,
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Snapshot::from_sorted(entries)
    }
}

/// Sums snapshots with pipestatic's rule.
pub fn sum<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> Snapshot {
    let mut merger = Merger::new();
    for snapshot in snapshots {
        merger.add_snapshot(snapshot);
    }
    merger.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(pairs: &[(&str, Value)]) -> Snapshot {
        Snapshot::from_entries(pairs.iter().map(|(n, v)| Entry {
            name: (*n).into(),
            value: *v,
        }))
    }

    #[test]
    fn sums_with_pipestatic_types() {
        let a = snap(&[
            ("ints", Value::Int(2)),
            ("mixed", Value::Int(1)),
            ("only a", Value::Int(7)),
        ]);
        let b = snap(&[("ints", Value::Int(3)), ("mixed", Value::Float(0.5))]);
        let c = snap(&[("ints", Value::Int(i64::MAX))]);
        let merged = sum([&a, &b]);
        assert_eq!(merged.get("ints"), Some(Value::Int(5)));
        assert_eq!(merged.get("mixed"), Some(Value::Float(1.5)));
        assert_eq!(merged.get("only a"), Some(Value::Int(7)));
        assert!(sum([&a, &b, &c]).get("ints").unwrap().is_float());
    }

    #[test]
    fn min_max_last_keep_floats_float() {
        let cases = [
            (Rule::Min, Value::Int(3), Value::Int(2), Value::Int(2)),
            (Rule::Max, Value::Int(3), Value::Int(2), Value::Int(3)),
            (
                Rule::Max,
                Value::Float(1.0),
                Value::Int(2),
                Value::Float(2.0),
            ),
            (
                Rule::Min,
                Value::Float(f64::NAN),
                Value::Int(2),
                Value::Float(2.0),
            ),
            (
                Rule::Min,
                Value::Int(2),
                Value::Float(f64::NAN),
                Value::Float(2.0),
            ),
            (Rule::Last, Value::Int(1), Value::Int(9), Value::Int(9)),
        ];
        for (rule, a, b, want) in cases {
            assert_eq!(rule.combine(a, b), want, "{rule:?} {a:?} {b:?}");
        }
        assert_eq!("max".parse::<Rule>(), Ok(Rule::Max));
        assert!("avg".parse::<Rule>().is_err());
    }
}

/// Merges sources by what each stat is (see [`crate::kinds`]): histograms
/// as distributions (bucket counts, sums and counts added; min of mins, max
/// of maxes; quantiles recomputed from the merged buckets, never averaged),
/// counters and gauges summed, `max` stats by their largest value. An
/// override rule, when given for a name, wins over the kind.
#[derive(Debug, Default)]
pub struct TypedMerger {
    scalars: Merger,
    histograms: HashMap<String, crate::histogram::Distribution>,
    kinds: crate::kinds::Kinds,
}

impl TypedMerger {
    /// An empty merger.
    pub fn new() -> TypedMerger {
        TypedMerger::default()
    }

    /// Adds one source's stats, read with the kinds it declared.
    pub fn add_source(
        &mut self,
        stats: &Snapshot,
        kinds: &crate::kinds::Kinds,
        override_rule: impl Fn(&str) -> Option<Rule>,
    ) {
        use crate::kinds::WireKind;
        let mut rebuilder = crate::histogram_lines::Rebuilder::new();
        let has_histograms = kinds.has_histograms();
        for (name, value) in stats.iter() {
            if has_histograms
                && rebuilder.take(name, value, |h| kinds.get(h) == Some(WireKind::Histogram))
            {
                continue;
            }
            let kind = kinds.get(name);
            let rule = override_rule(name).unwrap_or(match kind {
                Some(WireKind::Max) => Rule::Max,
                // A histogram's lines reach here only when its base line is
                // not declared as one: summed, as the rebuilder would.
                Some(WireKind::Counter | WireKind::Histogram) | None => Rule::Sum,
            });
            if let Some(kind) = kind {
                // A lookup, no allocation, once the name is declared.
                self.kinds.declare(name, kind);
            }
            self.scalars.add_with(name, value, rule);
        }
        for (name, distribution) in rebuilder.finish() {
            self.kinds.declare(&name, WireKind::Histogram);
            match self.histograms.get_mut(&name) {
                Some(total) => total.merge(&distribution),
                None => {
                    self.histograms.insert(name, distribution);
                }
            }
        }
    }

    /// The merged distributions, by histogram name.
    pub fn histograms(&self) -> &HashMap<String, crate::histogram::Distribution> {
        &self.histograms
    }

    /// The merged snapshot (histograms rendered back to lines with fresh
    /// quantiles) and the kinds seen across sources.
    pub fn finish(self) -> (Snapshot, crate::kinds::Kinds) {
        let mut entries = self.scalars.finish().into_entries();
        let mut buf = Vec::new();
        for (name, distribution) in &self.histograms {
            crate::histogram_lines::render(name, distribution, &mut buf);
        }
        let (rendered, _) = Snapshot::parse(&buf, usize::MAX);
        entries.extend(rendered.into_entries());
        (Snapshot::from_entries(entries), self.kinds)
    }
}

#[cfg(test)]
mod typed_tests {
    use super::*;
    use crate::histogram::{Histogram, HistogramCell};
    use crate::kinds::{Kinds, WireKind};
    use std::sync::Arc;

    /// What one process would serve: its histogram's lines plus two scalars.
    fn source(values: &[f64], highwater: i64) -> (Snapshot, Kinds) {
        let h = Histogram::new(Arc::new(HistogramCell::new("lat".into())));
        for &v in values {
            h.record_float(v);
        }
        let mut buf = Vec::new();
        crate::histogram_lines::render("lat", &h.distribution(), &mut buf);
        buf.extend_from_slice(format!("jobs.highwater: {highwater}\nrequests: 2\n").as_bytes());
        let mut kinds = Kinds::new();
        kinds.declare("lat", WireKind::Histogram);
        kinds.declare("jobs.highwater", WireKind::Max);
        kinds.declare("requests", WireKind::Counter);
        (Snapshot::parse(&buf, 4096).0, kinds)
    }

    #[test]
    fn histograms_merge_exactly_and_quantiles_are_recomputed() {
        let all: Vec<f64> = (1..=3000).map(|i| f64::from(i) * 0.001).collect();
        let one = Histogram::new(Arc::new(HistogramCell::new("lat".into())));
        let mut merger = TypedMerger::new();
        for (part, chunk) in all.chunks(1000).enumerate() {
            let (snapshot, kinds) = source(chunk, part as i64 + 4);
            merger.add_source(&snapshot, &kinds, |_| None);
            chunk.iter().for_each(|&v| one.record_float(v));
        }
        let (merged, kinds) = merger.finish();
        let whole = one.distribution();
        for suffix in ["count", "min", "max", "p50", "p90", "p99"] {
            let want = match suffix {
                "count" => Value::Int(3000),
                "min" => Value::Float(whole.min),
                "max" => Value::Float(whole.max),
                "p50" => Value::Float(whole.quantile(0.5).unwrap()),
                "p90" => Value::Float(whole.quantile(0.9).unwrap()),
                _ => Value::Float(whole.quantile(0.99).unwrap()),
            };
            assert_eq!(merged.get(&format!("lat.{suffix}")), Some(want), "{suffix}");
        }
        let sum = merged.get("lat.sum").unwrap().as_f64();
        assert!((sum - 4501.5).abs() < 1e-9, "{sum}");
        assert_eq!(merged.get("jobs.highwater"), Some(Value::Int(6)));
        assert_eq!(merged.get("requests"), Some(Value::Int(6)));
        assert_eq!(kinds.get("lat"), Some(WireKind::Histogram));
    }

    #[test]
    fn foreign_sources_are_plain_sums_and_overrides_win() {
        let mut merger = TypedMerger::new();
        let (a, _) = Snapshot::parse(b"lat.count: 2\nq.depth: 5\n", 4096);
        let (b, _) = Snapshot::parse(b"lat.count: 3\nq.depth: 7\n", 4096);
        let min_for_depth = |n: &str| (n == "q.depth").then_some(Rule::Min);
        merger.add_source(&a, &Kinds::new(), min_for_depth);
        merger.add_source(&b, &Kinds::new(), min_for_depth);
        let (merged, _) = merger.finish();
        assert_eq!(merged.get("lat.count"), Some(Value::Int(5)));
        assert_eq!(merged.get("q.depth"), Some(Value::Int(5)));
    }
}
