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
use std::sync::Arc;
use std::time::SystemTime;

use stats_core::histogram_lines::{Part, Rebuilder, classify, render};
use stats_core::kinds::{Kinds, WireKind};
use stats_core::{Distribution, Entry, Snapshot, Value};

use crate::rules::MergeOverrides;

/// One process's last read cumulative stats, each list sorted by name.
/// Kept as plain pairs (not a [`Snapshot`] and [`Kinds`]) so a pass with
/// the same names as the last one updates values in place, allocating
/// nothing per stat. The names are the snapshots' shared strings (interned
/// across sources by the reader): a thousand processes hold one copy of a
/// name, and a name is found again by its pointer before its bytes.
#[derive(Debug, Default)]
struct Held {
    /// Start time of the process; `None` when `/proc` could not say (it
    /// exited right after serving).
    started: Option<SystemTime>,
    /// Its declared counters (but those an override takes).
    counters: Vec<(Arc<str>, Value)>,
    /// Every line of its declared histograms.
    histogram_lines: Vec<(Arc<str>, Value)>,
    /// What `counters` was taken from last: the snapshot's shared list of
    /// names and the [`Retention::positions_made`] of the counter
    /// positions used. A snapshot with that list, under those positions,
    /// holds its counters at the same places: they are compared and
    /// overwritten value by value (issue 15).
    taken_from: Option<(Arc<[Arc<str>]>, u64)>,
}

impl Held {
    /// As a source to merge: its lines and what they are.
    fn as_source(&self) -> (Snapshot, Kinds) {
        let mut kinds = Kinds::new();
        let mut entries = Vec::with_capacity(self.counters.len() + self.histogram_lines.len());
        for (name, value) in &self.counters {
            kinds.declare(name, WireKind::Counter);
            entries.push(Entry {
                name: Arc::clone(name),
                value: *value,
            });
        }
        for (name, value) in &self.histogram_lines {
            if let Some((histogram, _)) = classify(name) {
                kinds.declare(&histogram, WireKind::Histogram);
            }
            entries.push(Entry {
                name: Arc::clone(name),
                value: *value,
            });
        }
        (Snapshot::from_entries(entries), kinds)
    }
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
    /// Which stats of the last snapshot noted are retained counters.
    positions: Option<CounterPositions>,
    /// How many times `positions` was worked out: a [`Held::taken_from`]
    /// with another number was taken under other positions.
    positions_made: u64,
}

/// Which stats of a snapshot (by position) are declared counters no
/// override takes, for the names, kinds and overrides it was worked out
/// with. The next process of the same program sends the same shared names
/// under the same shared kinds: checked by pointer, its counters are known
/// without looking each name up (issue 15).
struct CounterPositions {
    /// A snapshot with the names worked out with: one whose parse shared
    /// its name list fits by one pointer comparison.
    names: Snapshot,
    kinds: Kinds,
    overrides: MergeOverrides,
    counter: Vec<bool>,
}

impl CounterPositions {
    fn fits(&self, snapshot: &Snapshot, kinds: &Kinds, overrides: &MergeOverrides) -> bool {
        self.kinds.shares_with(kinds)
            && (self.names.shares_names_with(snapshot)
                || self.names.len() == snapshot.len()
                    && self
                        .names
                        .names()
                        .iter()
                        .zip(snapshot.names())
                        .all(|(name, held)| Arc::ptr_eq(name, held)))
            && self.overrides == *overrides
    }
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
            positions: None,
            positions_made: 0,
        }
    }

    /// Folds (process exits and resets) so far.
    pub(crate) fn folds(&self) -> u64 {
        self.folds
    }

    /// Notes what one pass read: `read` are the sources read `Ok` this pass
    /// (PID, the start time the read's checks found if they did, stats,
    /// kinds; a missing start time is asked of `/proc`). Returns the held stats of live processes not
    /// read this pass, to merge besides them (and [`Retention::retained`]).
    pub(crate) fn update<'a>(
        &mut self,
        read: impl IntoIterator<Item = (u32, Option<SystemTime>, &'a Snapshot, &'a Kinds)>,
        overrides: &MergeOverrides,
    ) -> Vec<(Snapshot, Kinds)> {
        let mut read_now = Vec::new();
        for (pid, checked, snapshot, kinds) in read {
            if kinds.is_empty() {
                continue;
            }
            read_now.push(pid);
            // The reader's checks looked the process up just before its
            // read: asking `/proc` again was one more `stat` per pipe.
            let started = checked.or_else(|| (self.start_time)(pid));
            let mut held = match self.held.remove(&pid) {
                Some(old) if !same_start(started, old.started) => {
                    // The PID was reused: the old process is gone.
                    self.fold_all(&old);
                    Held::default()
                }
                Some(old) => old,
                None => Held::default(),
            };
            held.started = started.or(held.started);
            self.note(&mut held, snapshot, kinds, overrides);
            self.held.insert(pid, held);
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
            let alive = match (self.held[&pid].started, (self.start_time)(pid)) {
                (_, None) => false,
                (then, now) => same_start(then, now),
            };
            if alive {
                kept.push(self.held[&pid].as_source());
            } else if let Some(gone) = self.held.remove(&pid) {
                self.fold_all(&gone);
            }
        }
        if self.retained_source.is_none()
            && !(self.counters.is_empty() && self.histograms.is_empty())
        {
            self.retained_source = Some(self.render_retained());
        }
        kept
    }

    /// The retained totals of exited processes as one source to merge.
    pub(crate) fn retained(&self) -> Option<(&Snapshot, &Kinds)> {
        self.retained_source.as_ref().map(|(s, k)| (s, k))
    }

    /// Takes a live process's cumulative stats of this pass into `held`,
    /// folding what a reset lost first.
    fn note(
        &mut self,
        held: &mut Held,
        snapshot: &Snapshot,
        kinds: &Kinds,
        overrides: &MergeOverrides,
    ) {
        let has_histograms = kinds.has_histograms();
        let mut counters: Vec<(&Arc<str>, Value)> = Vec::with_capacity(held.counters.len());
        let mut lines: Vec<(&Arc<str>, Value)> = Vec::with_capacity(held.histogram_lines.len());
        let mut count_lines: Vec<(&str, String)> = Vec::new();
        if !has_histograms {
            let (counter, made) = self.counter_positions(snapshot, kinds, overrides);
            if held.histogram_lines.is_empty()
                && held.taken_from.as_ref().is_some_and(|(names, taken)| {
                    Arc::ptr_eq(names, snapshot.names_list()) && *taken == made
                })
            {
                for (name, before) in follow(&mut held.counters, snapshot.values(), counter) {
                    self.fold_counter(&name, before);
                }
                return;
            }
            counters.extend(
                snapshot
                    .entries()
                    .zip(counter)
                    .filter(|(_, counter)| **counter)
                    .map(|(entry, _)| entry),
            );
        }
        for (name, value) in snapshot.entries().filter(|_| has_histograms) {
            match kinds.get(name) {
                Some(WireKind::Counter) if overrides.rule_for(name).is_none() => {
                    counters.push((name, value));
                }
                // Every histogram line has a `.suffix`.
                None if has_histograms && name.contains('.') => {
                    let Some((histogram, part)) = classify(name) else {
                        continue;
                    };
                    if kinds.get(&histogram) == Some(WireKind::Histogram) {
                        if part == Part::Count {
                            count_lines.push((&**name, histogram));
                        }
                        lines.push((name, value));
                    }
                }
                _ => {}
            }
        }
        for (name, before) in fell(&held.counters, &counters) {
            self.fold_counter(name, before);
        }
        let reset: Vec<&str> = fell(&held.histogram_lines, &lines)
            .filter_map(|(line, _)| count_lines.iter().find(|(c, _)| *c == &**line))
            .map(|(_, histogram)| histogram.as_str())
            .collect();
        if !reset.is_empty() {
            let lost = rebuild(&held.histogram_lines, |h| reset.contains(&h));
            for (name, distribution) in lost {
                self.fold_histogram(name, &distribution);
            }
        }
        overwrite(&mut held.counters, &counters);
        overwrite(&mut held.histogram_lines, &lines);
        held.taken_from =
            (!has_histograms).then(|| (Arc::clone(snapshot.names_list()), self.positions_made));
    }

    /// Which of `snapshot`'s stats are retained counters, by position (see
    /// [`CounterPositions`]), and which working-out of them that is
    /// ([`Retention::positions_made`]).
    fn counter_positions(
        &mut self,
        snapshot: &Snapshot,
        kinds: &Kinds,
        overrides: &MergeOverrides,
    ) -> (&[bool], u64) {
        let fits = self
            .positions
            .as_ref()
            .is_some_and(|known| known.fits(snapshot, kinds, overrides));
        if !fits {
            let counter = snapshot
                .iter()
                .map(|(name, _)| {
                    kinds.get(name) == Some(WireKind::Counter) && overrides.rule_for(name).is_none()
                })
                .collect();
            self.positions_made += 1;
            self.positions = Some(CounterPositions {
                names: snapshot.clone(),
                kinds: kinds.clone(),
                overrides: overrides.clone(),
                counter,
            });
        }
        let counter = self
            .positions
            .as_ref()
            .map_or(&[][..], |known| &known.counter);
        (counter, self.positions_made)
    }

    /// A process is gone: all its cumulative stats join the retained totals.
    fn fold_all(&mut self, gone: &Held) {
        for (name, value) in &gone.counters {
            self.fold_counter(name, *value);
        }
        // Only declared histograms' lines were held.
        for (name, distribution) in rebuild(&gone.histogram_lines, |_| true) {
            self.fold_histogram(name, &distribution);
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
                name: name.as_str().into(),
                value: *value,
            });
        }
        (Snapshot::from_entries(entries), kinds)
    }
}

/// What a [`Retention`] holds, for a one-shot command to keep between runs
/// (the archive stores it in its database; see `docs/ARCHIVE.md`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RetainedState {
    /// Each live process's last read cumulative stats.
    pub(crate) processes: Vec<HeldProcess>,
    /// The retained totals of exited processes: counters, and the lines of
    /// histograms (without quantiles, which a histogram recomputes).
    pub(crate) totals: Vec<HeldLine>,
}

/// One live process's last read cumulative stats.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HeldProcess {
    /// Its PID.
    pub(crate) pid: u32,
    /// Its start time, as the start-time function of the [`Retention`]
    /// gave it; `None` if unknown.
    pub(crate) started: Option<SystemTime>,
    /// Its declared counters and the lines of its declared histograms.
    pub(crate) lines: Vec<HeldLine>,
}

/// One cumulative line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HeldLine {
    /// The line's name.
    pub(crate) name: String,
    /// `true` for a line of a histogram, `false` for a counter.
    pub(crate) histogram: bool,
    /// Its value.
    pub(crate) value: Value,
}

impl Retention {
    /// A retention holding `state` (as [`Retention::state`] gave it), asking
    /// `start_time` whether its processes still live.
    pub(crate) fn restore(state: RetainedState, start_time: Box<StartTimeFn>) -> Retention {
        let mut retention = Retention::with_start_time(start_time);
        for process in state.processes {
            let mut held = Held {
                started: process.started,
                ..Held::default()
            };
            for line in process.lines {
                let list = if line.histogram {
                    &mut held.histogram_lines
                } else {
                    &mut held.counters
                };
                list.push((Arc::from(line.name), line.value));
            }
            // `fell` and `overwrite` need the lists sorted by name.
            held.counters.sort_by(|a, b| a.0.cmp(&b.0));
            held.histogram_lines.sort_by(|a, b| a.0.cmp(&b.0));
            retention.held.insert(process.pid, held);
        }
        let mut histogram_lines = Vec::new();
        for line in state.totals {
            if line.histogram {
                histogram_lines.push((line.name, line.value));
            } else {
                retention.counters.insert(line.name, line.value);
            }
        }
        retention.histograms = rebuild(&histogram_lines, |_| true);
        retention
    }

    /// Folds process `pid` into the retained totals as if it had exited
    /// (the archive does so for a process of an earlier boot).
    pub(crate) fn fold_process(&mut self, pid: u32) {
        if let Some(gone) = self.held.remove(&pid) {
            self.fold_all(&gone);
        }
    }

    /// What it holds, to [`Retention::restore`] later; sorted (processes by
    /// PID, lines by name) so equal states compare equal.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // archive's command only
    pub(crate) fn state(&self) -> RetainedState {
        let lines = |held: &Held| -> Vec<HeldLine> {
            let counters = held
                .counters
                .iter()
                .map(|(name, value)| (name, false, value));
            let histogram = held.histogram_lines.iter().map(|(n, v)| (n, true, v));
            let mut lines: Vec<HeldLine> = counters
                .chain(histogram)
                .map(|(name, histogram, value)| HeldLine {
                    name: name.to_string(),
                    histogram,
                    value: *value,
                })
                .collect();
            lines.sort_by(|a, b| a.name.cmp(&b.name));
            lines
        };
        let mut processes: Vec<HeldProcess> = self
            .held
            .iter()
            .map(|(&pid, held)| HeldProcess {
                pid,
                started: held.started,
                lines: lines(held),
            })
            .collect();
        processes.sort_by_key(|process| process.pid);
        let mut totals: Vec<HeldLine> = self
            .counters
            .iter()
            .map(|(name, value)| HeldLine {
                name: name.as_str().into(),
                histogram: false,
                value: *value,
            })
            .collect();
        let mut buf = Vec::new();
        for (name, distribution) in &self.histograms {
            render(name, distribution, &mut buf);
        }
        let (rendered, _) = Snapshot::parse(&buf, usize::MAX);
        totals.extend(
            rendered
                .iter()
                .filter(|(line, _)| !matches!(classify(line), Some((_, Part::Quantile))))
                .map(|(name, value)| HeldLine {
                    name: name.to_owned(),
                    histogram: true,
                    value,
                }),
        );
        totals.sort_by(|a, b| a.name.cmp(&b.name));
        RetainedState { processes, totals }
    }
}

/// Whether a merged line counts up, by the kinds declared for it:
/// `Some(true)` for a declared counter and a histogram's `.count`, `.sum`,
/// `.nan` and bucket lines; `Some(false)` for a `max` stat and a
/// histogram's `.min`, `.max` and quantiles; `None` for an undeclared stat
/// (a gauge of our writer, or anything of a foreign one).
pub fn is_counter_line(kinds: &Kinds, line: &str) -> Option<bool> {
    match kinds.get(line) {
        Some(WireKind::Counter) => return Some(true),
        Some(WireKind::Histogram | WireKind::Max) => return Some(false),
        None => {}
    }
    let (histogram, part) = classify(line)?;
    (kinds.get(&histogram) == Some(WireKind::Histogram)).then_some(matches!(
        part,
        Part::Count | Part::Sum | Part::Nan | Part::Bucket(_)
    ))
}

/// Whether two names are the same: the same shared string (the usual
/// case), else the same bytes.
fn same_name(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// The old values, by name, of the stats whose new value is lower (both
/// lists sorted by name).
fn fell<'a>(
    old: &'a [(Arc<str>, Value)],
    new: &'a [(&'a Arc<str>, Value)],
) -> impl Iterator<Item = (&'a Arc<str>, Value)> {
    let mut at = 0;
    new.iter().filter_map(move |&(name, now)| {
        while at < old.len() && !Arc::ptr_eq(&old[at].0, name) && old[at].0 < *name {
            at += 1;
        }
        let (old_name, before) = old.get(at)?;
        (same_name(old_name, name) && less(now, *before)).then_some((old_name, *before))
    })
}

/// Takes a process's counter values from `values` at the positions
/// `counter` marks, into `held` (taken from a snapshot with the same names
/// under the same positions: the same names, in order); returns the old
/// values of those that fell (a reset).
fn follow(
    held: &mut [(Arc<str>, Value)],
    values: &[Value],
    counter: &[bool],
) -> Vec<(Arc<str>, Value)> {
    let mut fell = Vec::new();
    let now = values.iter().zip(counter).filter(|(_, counter)| **counter);
    for ((name, before), (&now, _)) in held.iter_mut().zip(now) {
        if less(now, *before) {
            fell.push((Arc::clone(name), *before));
        }
        *before = now;
    }
    fell
}

/// Makes `held` hold `now`: values overwritten in place when the names are
/// the same as last time (the usual pass), else rebuilt.
fn overwrite(held: &mut Vec<(Arc<str>, Value)>, now: &[(&Arc<str>, Value)]) {
    let same_names =
        held.len() == now.len() && held.iter().zip(now).all(|((a, _), (b, _))| same_name(a, b));
    if same_names {
        for ((_, value), (_, new)) in held.iter_mut().zip(now) {
            *value = *new;
        }
    } else {
        *held = now.iter().map(|(n, v)| (Arc::clone(n), *v)).collect();
    }
}

/// The histograms of held `lines` that `wanted` names.
fn rebuild<N: AsRef<str>>(
    lines: &[(N, Value)],
    wanted: impl Fn(&str) -> bool,
) -> HashMap<String, Distribution> {
    let mut rebuilder = Rebuilder::new();
    for (name, value) in lines {
        rebuilder.take(name.as_ref(), *value, &wanted);
    }
    rebuilder.finish()
}

/// Start times this close are one process. `/proc` gives a start time in
/// clock ticks after boot; as wall-clock time it moves with every
/// recomputation of the boot time (by the clocks' read gap, or by a step of
/// the wall clock), so an exact comparison would take one process for two
/// and count it twice. Another process with the same PID within a second
/// would need the PIDs to wrap that fast; even then its counters start
/// lower, and the reset rule folds the old ones.
const SAME_START: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether two start times are one process's; an unknown one matches.
fn same_start(a: Option<SystemTime>, b: Option<SystemTime>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            let gap = a.duration_since(b).unwrap_or_else(|e| e.duration());
            gap < SAME_START
        }
        _ => true,
    }
}

/// `a < b`, exact for two integers.
fn less(a: Value, b: Value) -> bool {
    match (a, b) {
        (Value::Int(a), Value::Int(b)) => a < b,
        _ => a.as_f64() < b.as_f64(),
    }
}

#[cfg(test)]
mod tests;
