//! Counter retention: what keeps a host-wide counter from going backwards
//! when a process exits or resets its counters.
//!
//! A stat is *cumulative* when its writer declared it a counter
//! (`#counter NAME: 1`), or it is a line of a declared histogram (bucket
//! counts, `.count`, `.sum` and `.nan` only ever grow; `.min`/`.max` are
//! kept with them so the retained distribution stays whole). A process is
//! identified by its PID and its start time (from `/proc`), so a reused PID
//! is a new process.
//!
//! - While a process is alive, its last read cumulative stats count in every
//!   pass, even one in which its pipe was not read (it timed out, or is
//!   between two FIFOs): a slow writer never makes a counter dip.
//! - When it exits (no process with that PID and start time), its last
//!   values are *folded* into a retained total per stat name, merged into
//!   every later pass; so memory grows with the number of distinct stat
//!   names, never with the number of processes that ever lived.
//! - A counter that fell within one process (it was reset), or a histogram
//!   whose `.count` fell, folds its value from before the reset.
//! - Gauges (everything undeclared, every stat of a foreign writer) and
//!   `max` stats are never retained: they vanish with their process.
//! - A stat matched by a `--rule` override merges by that rule over the
//!   live sources only, so it is not retained (a histogram's lines ignore
//!   overrides and are always retained).

use std::collections::HashMap;
use std::time::SystemTime;

use stats_core::histogram_lines::{Rebuilder, render};
use stats_core::kinds::{Kinds, WireKind};
use stats_core::{Distribution, Entry, Snapshot, Value, tags};

use crate::rules::MergeOverrides;

/// One process's last read cumulative stats.
#[derive(Debug)]
struct Held {
    /// Start time of the process; `None` when `/proc` could not say (it
    /// exited right after serving).
    started: Option<SystemTime>,
    /// Its cumulative lines only (declared counters, histogram lines).
    lines: Snapshot,
    /// The kinds it declared for them.
    kinds: Kinds,
}

/// How a process's start time is found; `/proc` in a collector, a table in
/// tests.
pub(crate) type StartTimeFn = dyn Fn(u32) -> Option<SystemTime> + Send;

/// Retained totals plus every live process's last cumulative stats.
pub(crate) struct Retention {
    start_time: Box<StartTimeFn>,
    held: HashMap<u32, Held>,
    counters: HashMap<String, Value>,
    histograms: HashMap<String, Distribution>,
    /// The retained totals as a source to merge, rebuilt after a fold.
    retained_source: Option<(Snapshot, Kinds)>,
    folds: u64,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention")
            .field("held", &self.held.len())
            .field("counters", &self.counters.len())
            .field("histograms", &self.histograms.len())
            .field("folds", &self.folds)
            .finish()
    }
}

impl Retention {
    /// Retention that asks `/proc` for start times.
    pub(crate) fn new() -> Retention {
        Retention::with_start_time(Box::new(|pid| crate::procfs::start_time(pid).ok()))
    }

    /// Retention that asks `start_time` whether a process lives and since when.
    pub(crate) fn with_start_time(start_time: Box<StartTimeFn>) -> Retention {
        Retention {
            start_time,
            held: HashMap::new(),
            counters: HashMap::new(),
            histograms: HashMap::new(),
            retained_source: None,
            folds: 0,
        }
    }

    /// Folds (process exits and resets) so far.
    pub(crate) fn folds(&self) -> u64 {
        self.folds
    }

    /// Notes what one pass read: `read` are the sources read `Ok` this pass
    /// (PID, stats, kinds). Returns the sources to merge besides them: the
    /// held stats of live processes not read this pass, and the retained
    /// totals.
    pub(crate) fn update<'a>(
        &mut self,
        read: impl IntoIterator<Item = (u32, &'a Snapshot, &'a Kinds)>,
        overrides: &MergeOverrides,
    ) -> Vec<(&Snapshot, &Kinds)> {
        let mut read_now = Vec::new();
        for (pid, snapshot, kinds) in read {
            if kinds.is_empty() {
                continue;
            }
            read_now.push(pid);
            let started = (self.start_time)(pid);
            let lines = cumulative_lines(snapshot, kinds, overrides);
            let kinds = kinds.clone();
            match self.held.remove(&pid) {
                Some(old)
                    if started.is_some() && old.started.is_some() && started != old.started =>
                {
                    // The PID was reused: the old process is gone.
                    self.fold_all(&old);
                    let started = started.or(old.started);
                    self.held.insert(
                        pid,
                        Held {
                            started,
                            lines,
                            kinds,
                        },
                    );
                }
                Some(old) => {
                    self.fold_resets(&old, &lines, &kinds);
                    let started = started.or(old.started);
                    self.held.insert(
                        pid,
                        Held {
                            started,
                            lines,
                            kinds,
                        },
                    );
                }
                None => {
                    self.held.insert(
                        pid,
                        Held {
                            started,
                            lines,
                            kinds,
                        },
                    );
                }
            }
        }
        read_now.sort_unstable();
        let unread: Vec<u32> = self
            .held
            .keys()
            .copied()
            .filter(|pid| read_now.binary_search(pid).is_err())
            .collect();
        let mut kept = Vec::new();
        for pid in unread {
            let alive = match (&self.held[&pid].started, (self.start_time)(pid)) {
                (Some(then), Some(now)) => *then == now,
                (None, now) => now.is_some(),
                (Some(_), None) => false,
            };
            if alive {
                kept.push(pid);
            } else if let Some(gone) = self.held.remove(&pid) {
                self.fold_all(&gone);
            }
        }
        if self.retained_source.is_none()
            && !(self.counters.is_empty() && self.histograms.is_empty())
        {
            self.retained_source = Some(self.render_retained());
        }
        let mut extra: Vec<(&Snapshot, &Kinds)> = kept
            .iter()
            .filter_map(|pid| self.held.get(pid))
            .map(|held| (&held.lines, &held.kinds))
            .collect();
        if let Some((snapshot, kinds)) = &self.retained_source {
            extra.push((snapshot, kinds));
        }
        extra
    }

    /// A process is gone: all its cumulative stats join the retained totals.
    fn fold_all(&mut self, gone: &Held) {
        for (name, value) in gone.lines.iter() {
            if gone.kinds.get(name) == Some(WireKind::Counter) {
                self.fold_counter(name, value);
            }
        }
        for (name, distribution) in rebuild(&gone.lines, &gone.kinds, |_| true) {
            self.fold_histogram(name, &distribution);
        }
    }

    /// Folds the values from before a reset: a counter that fell, a
    /// histogram whose count fell.
    fn fold_resets(&mut self, old: &Held, lines: &Snapshot, kinds: &Kinds) {
        let mut reset_histograms = Vec::new();
        for (name, kind) in old.kinds.iter() {
            if kinds.get(name) != Some(kind) {
                continue;
            }
            match kind {
                WireKind::Counter => {
                    if let (Some(before), Some(now)) = (old.lines.get(name), lines.get(name))
                        && less(now, before)
                    {
                        self.fold_counter(name, before);
                    }
                }
                WireKind::Histogram => {
                    let count = count_line(name);
                    if let (Some(before), Some(now)) = (old.lines.get(&count), lines.get(&count))
                        && less(now, before)
                    {
                        reset_histograms.push(name.to_owned());
                    }
                }
                WireKind::Max => {}
            }
        }
        if !reset_histograms.is_empty() {
            let found = rebuild(&old.lines, &old.kinds, |h| {
                reset_histograms.iter().any(|r| r == h)
            });
            for (name, distribution) in found {
                self.fold_histogram(name, &distribution);
            }
        }
    }

    fn fold_counter(&mut self, name: &str, value: Value) {
        self.folds += 1;
        self.retained_source = None;
        match self.counters.get_mut(name) {
            Some(total) => *total = total.sum(value),
            None => {
                self.counters.insert(name.to_owned(), value);
            }
        }
    }

    fn fold_histogram(&mut self, name: String, distribution: &Distribution) {
        self.folds += 1;
        self.retained_source = None;
        match self.histograms.get_mut(&name) {
            Some(total) => total.merge(distribution),
            None => {
                self.histograms.insert(name, distribution.clone());
            }
        }
    }

    /// The retained totals as lines of one source, with their kinds.
    fn render_retained(&self) -> (Snapshot, Kinds) {
        let mut kinds = Kinds::new();
        let mut buf = Vec::new();
        for (name, distribution) in &self.histograms {
            render(name, distribution, &mut buf);
            kinds.declare(name, WireKind::Histogram);
        }
        let (histograms, _) = Snapshot::parse(&buf, usize::MAX);
        let mut entries = histograms.into_entries();
        for (name, value) in &self.counters {
            kinds.declare(name, WireKind::Counter);
            entries.push(Entry {
                name: name.clone(),
                value: *value,
            });
        }
        (Snapshot::from_entries(entries), kinds)
    }
}

/// Whether a merged line counts up, by the kinds declared for it:
/// `Some(true)` for a declared counter and a histogram's `.count`, `.sum`,
/// `.nan` and bucket lines; `Some(false)` for a `max` stat and a
/// histogram's `.min`, `.max` and quantiles; `None` for an undeclared stat
/// (a gauge of our writer, or anything of a foreign one).
pub fn is_counter_line(kinds: &Kinds, line: &str) -> Option<bool> {
    use stats_core::histogram_lines::{Part, classify};
    match kinds.get(line) {
        Some(WireKind::Counter) => return Some(true),
        Some(_) => return Some(false),
        None => {}
    }
    let (histogram, part) = classify(line)?;
    (kinds.get(&histogram) == Some(WireKind::Histogram)).then_some(matches!(
        part,
        Part::Count | Part::Sum | Part::Nan | Part::Bucket(_)
    ))
}

/// The cumulative lines of one source: declared counters (unless an
/// override takes them) and every line of a declared histogram.
fn cumulative_lines(snapshot: &Snapshot, kinds: &Kinds, overrides: &MergeOverrides) -> Snapshot {
    let entries: Vec<Entry> = snapshot
        .entries()
        .iter()
        .filter(|entry| match kinds.get(&entry.name) {
            Some(WireKind::Counter) => overrides.rule_for(&entry.name).is_none(),
            Some(_) => false,
            None => stats_core::histogram_lines::classify(&entry.name)
                .is_some_and(|(h, _)| kinds.get(&h) == Some(WireKind::Histogram)),
        })
        .cloned()
        .collect();
    Snapshot::from_sorted(entries)
}

/// The histograms of `lines` that `wanted` names.
fn rebuild(
    lines: &Snapshot,
    kinds: &Kinds,
    wanted: impl Fn(&str) -> bool,
) -> HashMap<String, Distribution> {
    let mut rebuilder = Rebuilder::new();
    for (name, value) in lines.iter() {
        rebuilder.take(name, value, |h| {
            kinds.get(h) == Some(WireKind::Histogram) && wanted(h)
        });
    }
    rebuilder.finish()
}

/// The `.count` line of histogram `name` (tags stay at the end).
fn count_line(name: &str) -> String {
    let split = tags::split(name);
    let pairs: Vec<(&str, &str)> = split
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    tags::join(&format!("{}.count", split.base), &pairs)
}

/// `a < b`, exact for two integers.
fn less(a: Value, b: Value) -> bool {
    match (a, b) {
        (Value::Int(a), Value::Int(b)) => a < b,
        _ => a.as_f64() < b.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    use stats_core::merge::TypedMerger;

    use super::*;

    /// Which PIDs live, and since when (seconds): the test's `/proc`.
    type Table = Arc<Mutex<HashMap<u32, u64>>>;

    fn retention(table: &Table) -> Retention {
        let table = Arc::clone(table);
        Retention::with_start_time(Box::new(move |pid| {
            let started = *table.lock().unwrap().get(&pid)?;
            Some(UNIX_EPOCH + Duration::from_secs(started))
        }))
    }

    /// What one of our writers serves: counter `requests`, gauge `depth`,
    /// histogram `lat` holding `values`.
    fn source(requests: i64, values: &[i64]) -> (Snapshot, Kinds) {
        let mut buf = format!("requests: {requests}\ndepth: 5\n").into_bytes();
        let mut d = Distribution::default();
        for &v in values {
            d.buckets[stats_core::buckets::index(v as f64)] += 1;
            d.count += 1;
            d.sum = d.sum.sum(Value::Int(v));
            d.min = d.min.min(v as f64);
            d.max = d.max.max(v as f64);
        }
        render("lat", &d, &mut buf);
        let mut kinds = Kinds::new();
        kinds.declare("requests", WireKind::Counter);
        kinds.declare("lat", WireKind::Histogram);
        (Snapshot::parse(&buf, 4096).0, kinds)
    }

    /// One pass over `read` (PID, source), merged as the collector does.
    fn pass(
        retention: &mut Retention,
        read: &[(u32, &(Snapshot, Kinds))],
        overrides: &MergeOverrides,
    ) -> Snapshot {
        let mut merger = TypedMerger::new();
        for (_, (snapshot, kinds)) in read {
            merger.add_source(snapshot, kinds, |n| overrides.rule_for(n));
        }
        let extra = retention.update(read.iter().map(|(pid, (s, k))| (*pid, s, k)), overrides);
        for (snapshot, kinds) in extra {
            merger.add_source(snapshot, kinds, |n| overrides.rule_for(n));
        }
        merger.finish().0
    }

    #[test]
    fn an_exited_process_is_folded_and_its_gauges_vanish() {
        let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1), (11, 1)])));
        let mut r = retention(&table);
        let none = MergeOverrides::new();
        let (a, b) = (source(7, &[1, 2, 100]), source(5, &[3]));
        let merged = pass(&mut r, &[(10, &a), (11, &b)], &none);
        assert_eq!(merged.get("requests"), Some(Value::Int(12)));
        assert_eq!(merged.get("depth"), Some(Value::Int(10)));
        assert_eq!(merged.get("lat.count"), Some(Value::Int(4)));

        // 10 timed out but lives: its counter and histogram still count.
        let merged = pass(&mut r, &[(11, &b)], &none);
        assert_eq!(merged.get("requests"), Some(Value::Int(12)));
        assert_eq!(merged.get("depth"), Some(Value::Int(5)));
        assert_eq!(merged.get("lat.max"), Some(Value::Int(100)));
        assert_eq!(r.folds(), 0);

        // 10 exits: folded, and stays folded pass after pass.
        table.lock().unwrap().remove(&10);
        for _ in 0..2 {
            let merged = pass(&mut r, &[(11, &b)], &none);
            assert_eq!(merged.get("requests"), Some(Value::Int(12)));
            assert_eq!(merged.get("depth"), Some(Value::Int(5)));
            assert_eq!(merged.get("lat.count"), Some(Value::Int(4)));
            assert_eq!(merged.get("lat.max"), Some(Value::Int(100)));
            assert_eq!(merged.get("lat.sum"), Some(Value::Int(106)));
        }
        assert_eq!(r.folds(), 2, "one counter and one histogram");
        assert!(r.held.len() == 1 && r.counters.len() == 1 && r.histograms.len() == 1);

        // Every process gone: the totals remain, the gauges are gone.
        table.lock().unwrap().clear();
        let merged = pass(&mut r, &[], &none);
        assert_eq!(merged.get("requests"), Some(Value::Int(12)));
        assert_eq!(merged.get("lat.count"), Some(Value::Int(4)));
        assert_eq!(merged.get("depth"), None);
        assert!(r.held.is_empty());
        assert_eq!(r.counters.len(), 1, "one total per name, not per process");
    }

    #[test]
    fn a_reset_within_a_process_folds_the_value_before_it() {
        let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1)])));
        let mut r = retention(&table);
        let none = MergeOverrides::new();
        let before = source(40, &[1, 2, 3]);
        assert_eq!(
            pass(&mut r, &[(10, &before)], &none).get("requests"),
            Some(Value::Int(40))
        );
        let after = source(3, &[9]);
        let merged = pass(&mut r, &[(10, &after)], &none);
        assert_eq!(merged.get("requests"), Some(Value::Int(43)));
        assert_eq!(merged.get("lat.count"), Some(Value::Int(4)));
        assert_eq!(merged.get("lat.max"), Some(Value::Int(9)));
        let grown = source(10, &[9, 9]);
        let merged = pass(&mut r, &[(10, &grown)], &none);
        assert_eq!(merged.get("requests"), Some(Value::Int(50)));
        assert_eq!(merged.get("lat.count"), Some(Value::Int(5)));
        assert_eq!(r.folds(), 2);
    }

    #[test]
    fn counter_lines_table() {
        let (_, kinds) = source(1, &[1]);
        let cases = [
            ("requests", Some(true)),
            ("lat.count", Some(true)),
            ("lat.sum", Some(true)),
            ("lat.nan", Some(true)),
            ("lat.bucket[le=1.0]", Some(true)),
            ("lat.min", Some(false)),
            ("lat.max", Some(false)),
            ("lat.p99", Some(false)),
            ("depth", None),
            ("other.count", None),
        ];
        for (line, want) in cases {
            assert_eq!(is_counter_line(&kinds, line), want, "{line}");
        }
        let mut max = Kinds::new();
        max.declare("jobs.highwater", WireKind::Max);
        assert_eq!(is_counter_line(&max, "jobs.highwater"), Some(false));
    }

    #[test]
    fn a_reused_pid_is_a_new_process() {
        let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1)])));
        let mut r = retention(&table);
        let none = MergeOverrides::new();
        pass(&mut r, &[(10, &source(40, &[]))], &none);
        // Another process got PID 10 and counted past the old value already.
        table.lock().unwrap().insert(10, 2);
        let merged = pass(&mut r, &[(10, &source(50, &[]))], &none);
        assert_eq!(merged.get("requests"), Some(Value::Int(90)));
    }

    #[test]
    fn foreign_and_overridden_stats_are_not_retained() {
        let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1), (11, 1)])));
        let mut r = retention(&table);
        let overrides = MergeOverrides::from_rules(vec!["requests=max".parse().unwrap()]);
        let ours = source(40, &[1]);
        let foreign = (Snapshot::parse(b"requests: 7\n", 4096).0, Kinds::new());
        let merged = pass(&mut r, &[(10, &ours), (11, &foreign)], &overrides);
        assert_eq!(merged.get("requests"), Some(Value::Int(40)));
        table.lock().unwrap().clear();
        let merged = pass(&mut r, &[], &overrides);
        assert_eq!(merged.get("requests"), None);
        assert_eq!(merged.get("lat.count"), Some(Value::Int(1)));
    }
}
