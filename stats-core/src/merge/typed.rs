//! The typed merge: every source's stats combined by what each stat is.
//!
//! A reader merges a thousand sources of one program a pass, each sorted
//! by name, mostly with the same names (interned: one shared string per
//! name, see [`crate::kinds::KindsCache::intern`]) and the same shared
//! [`Kinds`]. So the merged stats are kept as one sorted run, and each
//! source is walked beside it: a name is found by comparing pointers, not
//! by hashing it, and what a name merges by is worked out once per name
//! and set of declarations, not once per source (issue 15).

use std::collections::HashMap;
use std::sync::Arc;

use super::Rule;
use crate::histogram::Distribution;
use crate::histogram_lines::{Rebuilder, render};
use crate::kinds::{Kinds, WireKind};
use crate::snapshot::{Entry, Snapshot};
use crate::value::Value;

/// Merges sources by what each stat is (see [`crate::kinds`]): histograms
/// as distributions (bucket counts, sums and counts added; min of mins, max
/// of maxes; quantiles recomputed from the merged buckets, never averaged),
/// counters and gauges summed, `max` stats by their largest value. An
/// override rule, when given for a name, wins over the kind.
#[derive(Debug, Default)]
pub struct TypedMerger {
    /// The merged stats but histograms, sorted by name, each once.
    merged: Vec<Merged>,
    /// Names of the source being added that `merged` lacks, in its order;
    /// woven into `merged` when the source ends (kept to reuse its room).
    fresh: Vec<Merged>,
    /// Room for the weave, kept between sources.
    spare: Vec<Merged>,
    histograms: HashMap<String, Distribution>,
    kinds: Kinds,
    /// The declarations of the last source added, and their number: a
    /// source with another set (not one shared [`Kinds`]) gets the next
    /// number, so a [`Merged::resolved_in`] that differs says the kind of
    /// its name must be looked up again.
    last_kinds: Option<(Kinds, u64)>,
    /// The names of the last source added, when they were the whole merged
    /// run position by position, and what each merges by: a source that
    /// shares that very list (the next process of the same program, parsed
    /// through one [`crate::kinds::KindsCache`]) merges value by value,
    /// with no walk of the names.
    same: Option<SameNames>,
}

/// The merged run's names as one source's shared list, with the rule of
/// each position worked out under one set of declarations.
#[derive(Debug)]
struct SameNames {
    names: Arc<[Arc<str>]>,
    /// The number of the set of declarations `rules` were worked out in
    /// (see [`TypedMerger::kinds_number`]): a source read with that set
    /// combines each value by its rule, nothing looked up per value.
    set: u64,
    rules: Vec<Rule>,
}

/// One merged stat, with what its value merges by.
#[derive(Debug)]
struct Merged {
    name: Arc<str>,
    value: Value,
    /// The override for the name (the caller's rule for it does not change
    /// within one merge).
    overridden: Option<Rule>,
    /// The kind its name has in the set of declarations numbered
    /// `resolved_in`.
    kind: Option<WireKind>,
    resolved_in: u64,
}

impl Merged {
    /// Combines a source's `value`, read with `kinds` (the set numbered
    /// `set`), looking the name's kind up again only for a new set, and
    /// noting it in `declared`.
    fn combine(&mut self, value: Value, kinds: &Kinds, set: u64, declared: &mut Kinds) {
        self.resolve(kinds, set, declared);
        self.value = self.rule().combine(self.value, value);
    }

    /// Looks the name's kind up in `kinds` (the set numbered `set`) unless
    /// it was in that set already, noting it in `declared`.
    fn resolve(&mut self, kinds: &Kinds, set: u64, declared: &mut Kinds) {
        if self.resolved_in != set {
            self.kind = kinds.get(&self.name);
            self.resolved_in = set;
            declare(declared, &self.name, self.kind);
        }
    }

    fn rule(&self) -> Rule {
        self.overridden.unwrap_or(match self.kind {
            Some(WireKind::Max) => Rule::Max,
            // A histogram's lines reach here only when its base line is
            // not declared as one: summed, as the rebuilder would.
            Some(WireKind::Counter | WireKind::Histogram) | None => Rule::Sum,
        })
    }
}

impl TypedMerger {
    /// An empty merger.
    pub fn new() -> TypedMerger {
        TypedMerger::default()
    }

    /// Adds one source's stats, read with the kinds it declared.
    /// `override_rule` must answer the same for a name in every call on one
    /// merger: it is asked once per name.
    pub fn add_source(
        &mut self,
        stats: &Snapshot,
        kinds: &Kinds,
        override_rule: impl Fn(&str) -> Option<Rule>,
    ) {
        let set = self.kinds_number(kinds);
        let has_histograms = kinds.has_histograms();
        if !has_histograms
            && let Some(same) = &mut self.same
            && Arc::ptr_eq(&same.names, stats.names_list())
        {
            if same.set != set {
                for merged in &mut self.merged {
                    merged.resolve(kinds, set, &mut self.kinds);
                }
                same.set = set;
                same.rules.clear();
                same.rules.extend(self.merged.iter().map(Merged::rule));
            }
            for ((merged, &value), &rule) in
                self.merged.iter_mut().zip(stats.values()).zip(&same.rules)
            {
                merged.value = rule.combine(merged.value, value);
            }
            return;
        }
        let mut rebuilder = Rebuilder::new();
        let mut fresh = std::mem::take(&mut self.fresh);
        let mut at = 0;
        for (name, value) in stats.entries() {
            if has_histograms
                && rebuilder.take(name, value, |h| kinds.get(h) == Some(WireKind::Histogram))
            {
                continue;
            }
            // The merged run and the source are both sorted: the name is at
            // `at` or after it, usually at it and the very same string.
            while let Some(merged) = self.merged.get(at)
                && !Arc::ptr_eq(&merged.name, name)
                && *merged.name < **name
            {
                at += 1;
            }
            match self.merged.get_mut(at) {
                Some(merged) if Arc::ptr_eq(&merged.name, name) || merged.name == *name => {
                    merged.combine(value, kinds, set, &mut self.kinds);
                    at += 1;
                }
                _ => {
                    let kind = kinds.get(name);
                    declare(&mut self.kinds, name, kind);
                    fresh.push(Merged {
                        name: Arc::clone(name),
                        value,
                        overridden: override_rule(name),
                        kind,
                        resolved_in: set,
                    });
                }
            }
        }
        if !fresh.is_empty() {
            self.weave(&mut fresh);
        }
        self.fresh = fresh;
        let names = stats.names();
        let same = self.merged.len() == names.len()
            && self
                .merged
                .iter()
                .zip(names)
                .all(|(merged, name)| Arc::ptr_eq(&merged.name, name));
        self.same = same.then(|| SameNames {
            names: Arc::clone(stats.names_list()),
            set,
            // Every merged name was in this source: resolved in `set`.
            rules: self.merged.iter().map(Merged::rule).collect(),
        });
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

    /// The number of `kinds`' set of declarations: the last one's if it is
    /// the same shared set, else a new one.
    fn kinds_number(&mut self, kinds: &Kinds) -> u64 {
        match &mut self.last_kinds {
            Some((last, number)) if last.shares_with(kinds) => *number,
            Some((last, number)) => {
                *last = kinds.clone();
                *number += 1;
                *number
            }
            None => {
                self.last_kinds = Some((kinds.clone(), 0));
                0
            }
        }
    }

    /// Merges the sorted names new in this source into the merged run.
    fn weave(&mut self, fresh: &mut Vec<Merged>) {
        let mut woven = std::mem::take(&mut self.spare);
        woven.clear();
        woven.reserve(self.merged.len() + fresh.len());
        let mut old = self.merged.drain(..).peekable();
        for new in fresh.drain(..) {
            while let Some(kept) = old.next_if(|kept| kept.name < new.name) {
                woven.push(kept);
            }
            // Only a source out of order (not a [`Snapshot`]'s promise) can
            // bring a name the run has: it combines as any other would.
            match old.next_if(|kept| kept.name == new.name) {
                Some(mut kept) => {
                    kept.value = new.rule().combine(kept.value, new.value);
                    woven.push(kept);
                }
                None => woven.push(new),
            }
        }
        woven.extend(old);
        self.spare = std::mem::replace(&mut self.merged, woven);
    }

    /// The merged distributions, by histogram name.
    pub fn histograms(&self) -> &HashMap<String, Distribution> {
        &self.histograms
    }

    /// The merged snapshot (histograms rendered back to lines with fresh
    /// quantiles) and the kinds seen across sources.
    pub fn finish(self) -> (Snapshot, Kinds) {
        let mut entries: Vec<Entry> = self
            .merged
            .into_iter()
            .map(|merged| Entry {
                name: merged.name,
                value: merged.value,
            })
            .collect();
        if self.histograms.is_empty() {
            // Sorted already: `from_entries` only checks it.
            return (Snapshot::from_entries(entries), self.kinds);
        }
        let mut buf = Vec::new();
        for (name, distribution) in &self.histograms {
            render(name, distribution, &mut buf);
        }
        let (rendered, _) = Snapshot::parse(&buf, usize::MAX);
        entries.extend(rendered.into_entries());
        (Snapshot::from_entries(entries), self.kinds)
    }
}

/// Notes in `kinds` the kind a source declared for `name` (the last
/// declaration wins, as with [`Kinds::declare`]).
fn declare(kinds: &mut Kinds, name: &str, kind: Option<WireKind>) {
    if let Some(kind) = kind {
        // A lookup, no allocation, once the name is declared.
        kinds.declare(name, kind);
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

    /// The merge as it was before the sorted runs (a hash map of totals,
    /// each name's kind looked up for every source): the new one must
    /// give the very same stats and kinds.
    fn reference(
        sources: &[(Snapshot, Kinds)],
        rule_for: impl Fn(&str) -> Option<Rule>,
    ) -> (Snapshot, Kinds) {
        let mut totals = crate::merge::Merger::new();
        let mut declared = Kinds::new();
        for (stats, kinds) in sources {
            for (name, value) in stats.iter() {
                let kind = kinds.get(name);
                let rule = rule_for(name).unwrap_or(match kind {
                    Some(WireKind::Max) => Rule::Max,
                    _ => Rule::Sum,
                });
                if let Some(kind) = kind {
                    declared.declare(name, kind);
                }
                totals.add_with(name, value, rule);
            }
        }
        (totals.finish(), declared)
    }

    /// Same values, and floats bit for bit (a NaN equals a NaN).
    fn same(a: &Snapshot, b: &Snapshot) -> bool {
        a.len() == b.len()
            && a.iter().zip(b.iter()).all(|((n, x), (m, y))| {
                n == m
                    && x.is_float() == y.is_float()
                    && x.as_f64().to_bits() == y.as_f64().to_bits()
            })
    }

    /// Three sets of kinds over `names`: each name a counter, `max` or
    /// undeclared, turning by one place from set to set.
    fn three_kinds_sets(names: &[impl AsRef<str>]) -> Vec<Kinds> {
        (0..3)
            .map(|set| {
                let mut kinds = Kinds::new();
                for (i, name) in names.iter().enumerate() {
                    match (i + set) % 3 {
                        0 => kinds.declare(name.as_ref(), WireKind::Counter),
                        1 => kinds.declare(name.as_ref(), WireKind::Max),
                        _ => {}
                    }
                }
                kinds
            })
            .collect()
    }

    /// Merges `built` and checks the stats and kinds against the hash map
    /// merge of the same sources.
    fn merges_as_the_reference(
        built: &[(Snapshot, Kinds)],
        rule_for: impl Fn(&str) -> Option<Rule> + Copy,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let mut merger = TypedMerger::new();
        for (stats, kinds) in built {
            merger.add_source(stats, kinds, rule_for);
        }
        let (merged, kinds) = merger.finish();
        let (want, want_kinds) = reference(built, rule_for);
        proptest::prop_assert!(same(&merged, &want), "{merged:?} != {want:?}");
        let mut got: Vec<_> = kinds.iter().collect();
        let mut wanted: Vec<_> = want_kinds.iter().collect();
        got.sort_by_key(|(n, _)| *n);
        wanted.sort_by_key(|(n, _)| *n);
        proptest::prop_assert_eq!(got, wanted);
        Ok(())
    }

    proptest::proptest! {
        /// Sources with names shared (one string, as interned) or not (equal
        /// strings apart), missing or extra names, kinds sets shared, other
        /// or changing from source to source, and overrides: the same
        /// result as the hash map merge.
        #[test]
        fn the_sorted_run_merge_equals_the_hash_map_merge(
            sources in proptest::collection::vec(
                (proptest::collection::vec((0usize..12, -5i64..5, proptest::bool::ANY, proptest::bool::ANY), 0..14), 0usize..4),
                0..8,
            )
        ) {
            let names: Vec<Arc<str>> = (0..12).map(|i| Arc::from(format!("stat.{i:02}"))).collect();
            let kinds_sets = three_kinds_sets(&names);
            let built: Vec<(Snapshot, Kinds)> = sources
                .iter()
                .map(|(stats, set)| {
                    let entries = stats.iter().map(|&(i, v, float, shared)| Entry {
                        name: if shared { Arc::clone(&names[i]) } else { Arc::from(&*names[i]) },
                        value: if float { Value::Float(v as f64 / 4.0) } else { Value::Int(v) },
                    });
                    // Set 3: a copy of set 0 that is not shared with it.
                    let kinds = match set {
                        3 => {
                            let mut copy = Kinds::new();
                            for (name, kind) in kinds_sets[0].iter() {
                                copy.declare(name, kind);
                            }
                            copy
                        }
                        set => kinds_sets[*set].clone(),
                    };
                    (Snapshot::from_entries(entries), kinds)
                })
                .collect();
            let rule_for = |n: &str| match n {
                "stat.03" => Some(Rule::Min),
                "stat.07" => Some(Rule::Last),
                _ => None,
            };
            merges_as_the_reference(&built, rule_for)?;
        }
    }

    proptest::proptest! {
        /// Sources of one program parsed through one cache share one list
        /// of names, and merge value by value after the first: the same
        /// result as the hash map merge, with kinds sets changing from
        /// source to source, a source with fewer names between them, and
        /// overrides.
        #[test]
        fn sources_sharing_names_merge_as_any_other(
            sources in proptest::collection::vec(
                (proptest::collection::vec(-5i64..5, 12), 0usize..3, proptest::bool::weighted(0.8)),
                0..8,
            )
        ) {
            let names: Vec<String> = (0..12).map(|i| format!("stat.{i:02}")).collect();
            let kinds_sets = three_kinds_sets(&names);
            let mut cache = crate::kinds::KindsCache::new();
            let built: Vec<(Snapshot, Kinds)> = sources
                .iter()
                .map(|(values, set, all)| {
                    let count = if *all { 12 } else { 6 };
                    let text: String = names[..count]
                        .iter()
                        .zip(values)
                        .map(|(name, value)| format!("{name}: {value}\n"))
                        .collect();
                    let (stats, _, _) =
                        Snapshot::parse_with_kinds_cached(text.as_bytes(), 64, &mut cache);
                    (stats, kinds_sets[*set].clone())
                })
                .collect();
            let shared = built
                .windows(2)
                .filter(|pair| pair[0].0.shares_names_with(&pair[1].0))
                .count();
            proptest::prop_assert!(built.len() < 3 || shared > 0 || sources.iter().any(|s| !s.2));
            let rule_for = |n: &str| (n == "stat.03").then_some(Rule::Min);
            merges_as_the_reference(&built, rule_for)?;
        }
    }

    /// A name declared a counter by one program and `max` by another: each
    /// source merges by its own declaration, whatever the source before it
    /// declared, and the last declaration is the merged kind.
    #[test]
    fn each_source_merges_by_its_own_kinds() {
        let mut counting = Kinds::new();
        counting.declare("x", WireKind::Counter);
        let mut maxing = Kinds::new();
        maxing.declare("x", WireKind::Max);
        let (five, _) = Snapshot::parse(b"x: 5\n", 64);
        let (three, _) = Snapshot::parse(b"x: 3\n", 64);
        let mut merger = TypedMerger::new();
        merger.add_source(&five, &counting, |_| None);
        merger.add_source(&three, &counting.clone(), |_| None);
        merger.add_source(&five, &maxing, |_| None);
        merger.add_source(&three, &counting, |_| None);
        let (merged, kinds) = merger.finish();
        // (5 + 3) max 5, + 3
        assert_eq!(merged.get("x"), Some(Value::Int(11)));
        assert_eq!(kinds.get("x"), Some(WireKind::Counter));
    }
}
