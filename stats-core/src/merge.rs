//! Merging snapshots from many processes into one host-wide snapshot.

use std::collections::HashMap;

mod typed;
pub use typed::TypedMerger;

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
