//! History of read passes: bounded ring buffers of every stat, host-wide and
//! per process, with per-second rates for counters, for `/history`, the
//! dashboard and `top`.
//!
//! # Storage
//!
//! One shared ring holds the collection time of every retained pass (a
//! *tick*); each series holds only its values, `f64`, in a ring of at most
//! [`HistoryOptions::points`] slots that ends at the tick it was last
//! updated. So a point's time is exactly the time its pass started, never a
//! computed `start + i × interval` (a dashboard that skips a beat or a slow
//! pass does not shift the axis). `f64`, not `f32`: counters pass 2^24 (16.7
//! million) quickly, beyond which `f32` cannot tell consecutive values apart
//! and every rate would be wrong; `f64` is exact to 2^53.
//!
//! A series is one stat of one process (keyed by PID *and* start time, so a
//! restarted process, or a reused PID, starts a new series), or the
//! host-wide sum of a stat. A tick a series missed (the process timed out, or
//! was not there yet) holds NaN.
//!
//! # Memory bound
//!
//! At most [`HistoryOptions::max_series`] series, each at most
//! `points × 8` bytes of values; a host-wide series also keeps its rate
//! ring, so it costs twice that. Over the cap, the least recently updated
//! series are evicted (per-process ones before host-wide ones; among equals
//! the newest, so established series are not churned by newcomers). A
//! process's series are dropped [`HistoryOptions::forget_after`] after its
//! last update, and any series once its last point leaves the window. With
//! the defaults (3,600 points, 10,000 series) values take at most ~275 MiB;
//! 1,000 series × 1 hour take ~28 MiB (see BENCHMARKS.md for the measured
//! RSS).
//!
//! # Rates
//!
//! A rate is `(v[i] - v[i-1]) / (t[i] - t[i-1])` within one process's series.
//! A counter that went down was reset: it contributes its new value (what it
//! counted since the reset), never a negative delta. The first point of a
//! process that started after the previous tick contributes its whole value
//! (it counted all of it since the previous tick); the first point of a
//! process that was already running when first seen has no rate (its value
//! was counted over an unknown time). The host-wide rate is the sum of the
//! per-process rates, so a restart never shows as a negative spike.
//!
//! Which stats are counters: the kinds our writers declared in the last recorded pass
//! ([`Pass::kinds`]): a declared counter and a histogram's `.count`, `.sum`
//! and bucket lines are counters, everything else our writers serve is a
//! gauge. For a foreign writer's stats (which declare nothing) a stat
//! counts as a counter while no process's value of it has ever decreased
//! (or been negative); a gauge that has only grown so far looks like a
//! counter until it first falls.

mod json;
mod query;
mod recorder;
mod series;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::export::unix_seconds;
use crate::{Pass, Source};
pub(crate) use query::percent_decode;
pub use query::{MAX_QUERY_GLOBS, Query};
pub use recorder::Recorder;
use series::Ring;
pub use series::step_rate;
use series::{Series, time_of};

/// Limits of a [`History`]; build with [`HistoryOptions::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryOptions {
    /// How often `serve` and `top` read a pass.
    pub interval: Duration,
    /// Points kept per series (with a 1 s interval, 3,600 is one hour).
    pub points: usize,
    /// Series kept at most (host-wide and per process together).
    pub max_series: usize,
    /// A process's series are dropped this long after their last update
    /// (the process died or its pipe went away).
    pub forget_after: Duration,
}

impl HistoryOptions {
    /// Default interval: one second, the pass cache's default age.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    /// Default points per series: an hour at one per second.
    pub const DEFAULT_POINTS: usize = 3600;
    /// Default series cap: ~275 MiB of values at most with the default
    /// points; a host with 50 processes of 180 stats fits.
    pub const DEFAULT_MAX_SERIES: usize = 10_000;
    /// Default time a dead process's lines stay on the charts.
    pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(600);

    /// The defaults above.
    pub fn new() -> HistoryOptions {
        HistoryOptions {
            interval: HistoryOptions::DEFAULT_INTERVAL,
            points: HistoryOptions::DEFAULT_POINTS,
            max_series: HistoryOptions::DEFAULT_MAX_SERIES,
            forget_after: HistoryOptions::DEFAULT_FORGET_AFTER,
        }
    }

    /// The most bytes the values of all series can take: `max_series ×
    /// points × 8`, doubled for the host-wide series (value and rate rings)
    /// of up to `stats` distinct stats.
    pub fn value_bytes_bound(&self, stats: usize) -> usize {
        (self.max_series + stats.min(self.max_series)) * self.points * size_of::<f64>()
    }
}

impl Default for HistoryOptions {
    fn default() -> HistoryOptions {
        HistoryOptions::new()
    }
}

/// Which process a per-process series belongs to: its PID and start time,
/// so a restarted process or a reused PID is a new series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessKey {
    /// The PID.
    pub pid: u32,
    /// When it started, Unix milliseconds (0 when `/proc` could not say).
    pub started_ms: u64,
}

impl ProcessKey {
    fn started_seconds(self) -> Option<f64> {
        (self.started_ms > 0).then(|| self.started_ms as f64 / 1e3)
    }
}

/// One stat: its host-wide series (value and rate) and one series per
/// process.
#[derive(Debug)]
struct StatHistory {
    total: Series,
    total_rate: Series,
    processes: HashMap<ProcessKey, Series>,
    /// Some process's value of it went down or below zero: not a counter
    /// (unless a hint says otherwise).
    decreased: bool,
}

/// The latest point of one stat, for `top`.
#[derive(Clone, Debug, PartialEq)]
pub struct Latest {
    /// The stat.
    pub name: Arc<str>,
    /// Whether it is taken as a counter.
    pub counter: bool,
    /// Host-wide value (NaN when no process had it at the last tick).
    pub value: f64,
    /// Host-wide per-second rate, for counters, when known.
    pub rate: Option<f64>,
    /// Each process's value and rate at the last tick.
    pub processes: Vec<(ProcessKey, f64, Option<f64>)>,
}

/// Bounded history of passes (see the module docs).
pub struct History {
    options: HistoryOptions,
    /// Collection time of each retained tick, Unix seconds.
    times: Ring,
    /// The number the next recorded tick gets.
    next_tick: u64,
    stats: HashMap<Arc<str>, StatHistory>,
    series: usize,
    evicted: u64,
    /// Start times of the PIDs of the last pass, for when `/proc` no
    /// longer has one (the process exited right after writing).
    started: HashMap<u32, u64>,
    /// Kinds declared in the last recorded pass.
    declared: stats_core::kinds::Kinds,
    /// Undeclared stats of the last recorded pass that only our writers
    /// served: gauges, no guessing.
    our_gauges: std::collections::HashSet<String>,
}

impl History {
    /// An empty history with these limits.
    pub fn new(options: HistoryOptions) -> History {
        History {
            times: Ring::new(options.points),
            options,
            next_tick: 0,
            stats: HashMap::new(),
            series: 0,
            evicted: 0,
            started: HashMap::new(),
            declared: stats_core::kinds::Kinds::new(),
            our_gauges: std::collections::HashSet::new(),
        }
    }

    /// The limits.
    pub fn options(&self) -> &HistoryOptions {
        &self.options
    }

    /// Series held now.
    pub fn series_count(&self) -> usize {
        self.series
    }

    /// Series evicted so far because of the cap.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Points (ticks) held now.
    pub fn ticks(&self) -> usize {
        self.times.len()
    }

    /// Collection times of the retained ticks, oldest first, Unix seconds.
    pub fn times(&self) -> Vec<f64> {
        (0..self.times.len()).map(|i| self.times.get(i)).collect()
    }

    /// Bytes held by the value rings (their allocated capacity), the part
    /// that [`HistoryOptions::value_bytes_bound`] bounds.
    pub fn value_bytes(&self) -> usize {
        self.stats
            .values()
            .map(|stat| {
                stat.total.values.heap_bytes()
                    + stat.total_rate.values.heap_bytes()
                    + stat
                        .processes
                        .values()
                        .map(|s| s.values.heap_bytes())
                        .sum::<usize>()
            })
            .sum()
    }

    /// Whether `name` is taken as a counter (see the module docs).
    pub fn is_counter(&self, name: &str) -> bool {
        crate::retention::is_counter_line(&self.declared, name)
            .or_else(|| self.our_gauges.contains(name).then_some(false))
            .unwrap_or_else(|| self.stats.get(name).is_some_and(|stat| !stat.decreased))
    }

    /// Records a pass: the host-wide sums and every `Ok` source's stats, at
    /// the pass's start time. Looks up each source's process start time in
    /// `/proc`.
    pub fn record(&mut self, pass: &Pass) {
        let mut started = HashMap::with_capacity(pass.sources.len());
        let sources: Vec<(ProcessKey, &Source)> = pass
            .sources
            .iter()
            .filter(|source| source.status.is_ok())
            .filter_map(|source| {
                let pid = source.pid?;
                let started_ms = crate::procfs::start_time(pid)
                    .ok()
                    .map(|t| (unix_seconds(t) * 1e3) as u64)
                    .or_else(|| self.started.get(&pid).copied())
                    .unwrap_or(0);
                started.insert(pid, started_ms);
                Some((ProcessKey { pid, started_ms }, source))
            })
            .collect();
        self.started = started;
        self.declared = pass.kinds.clone();
        let foreign: std::collections::HashSet<&str> = sources
            .iter()
            .filter(|(_, source)| source.foreign)
            .flat_map(|(_, source)| source.snapshot.iter().map(|(name, _)| name))
            .collect();
        // A merged stat no foreign source served came from our writers.
        self.our_gauges = pass
            .merged
            .iter()
            .map(|(name, _)| name)
            .filter(|name| !foreign.contains(name) && pass.kinds.get(name).is_none())
            .filter(|name| crate::retention::is_counter_line(&pass.kinds, name).is_none())
            .map(str::to_owned)
            .collect();
        let per_process = sources
            .iter()
            .map(|(key, source)| (*key, source.snapshot.iter()));
        let totals = pass
            .merged
            .iter()
            .map(|(name, value)| (name, value.as_f64()));
        self.record_values(
            unix_seconds(pass.started),
            totals,
            per_process.map(|(key, stats)| (key, stats.map(|(n, v)| (n, v.as_f64())))),
        );
    }

    /// Records one tick collected at `time` (Unix seconds): host-wide
    /// `totals` and each process's values. [`History::record`] calls this
    /// with a pass; tests and benchmarks call it directly.
    pub fn record_values<'a, T, P, S>(&mut self, time: f64, totals: T, processes: P)
    where
        T: IntoIterator<Item = (&'a str, f64)>,
        P: IntoIterator<Item = (ProcessKey, S)>,
        S: IntoIterator<Item = (&'a str, f64)>,
    {
        let tick = self.next_tick;
        let previous_time = self.times.last();
        self.next_tick += 1;
        self.times.push(time);
        let points = self.options.points;

        // Host-wide series first: they win over per-process ones at the cap.
        for (name, value) in totals {
            let stat = self.stat_mut(name, tick);
            stat.total.record(tick, value);
        }
        let mut rate_sums: HashMap<Arc<str>, f64> = HashMap::new();
        for (key, stats) in processes {
            let first_seen_new = match (key.started_seconds(), previous_time) {
                (Some(started), Some(previous)) => started > previous,
                // The very first tick: everything was already running.
                _ => false,
            };
            for (name, value) in stats {
                let (before, new_series) = {
                    let stat = self.stat_mut(name, tick);
                    let new_series = !stat.processes.contains_key(&key);
                    let series = stat
                        .processes
                        .entry(key)
                        .or_insert_with(|| Series::new(points, tick));
                    let before = if new_series {
                        None
                    } else {
                        series.previous(tick)
                    };
                    series.record(tick, value);
                    if value < 0.0 || before.is_some_and(|(_, v)| value < v) {
                        stat.decreased = true;
                    }
                    (before, new_series)
                };
                let rate = match before {
                    Some((before_tick, before_value)) => {
                        time_of(&self.times, self.next_tick, before_tick)
                            .map_or(f64::NAN, |t| step_rate(before_value, value, time - t))
                    }
                    None if first_seen_new => {
                        previous_time.map_or(f64::NAN, |t| step_rate(0.0, value, time - t))
                    }
                    None => f64::NAN,
                };
                if new_series {
                    self.series += 1;
                }
                if !rate.is_nan() {
                    let name = self
                        .stats
                        .get_key_value(name)
                        .map(|(k, _)| Arc::clone(k))
                        .unwrap_or_else(|| Arc::from(name));
                    *rate_sums.entry(name).or_insert(0.0) += rate;
                }
            }
        }
        for (name, stat) in &mut self.stats {
            if stat.total.last_tick == tick {
                let rate = rate_sums.get(name).copied().unwrap_or(f64::NAN);
                stat.total_rate.record(tick, rate);
            }
        }
        self.forget(tick, time);
    }

    fn stat_mut(&mut self, name: &str, tick: u64) -> &mut StatHistory {
        if !self.stats.contains_key(name) {
            let points = self.options.points;
            self.stats.insert(
                Arc::from(name),
                StatHistory {
                    total: Series::new(points, tick),
                    total_rate: Series::new(points, tick),
                    processes: HashMap::new(),
                    decreased: false,
                },
            );
            self.series += 1;
        }
        // Just inserted if it was missing.
        self.stats.get_mut(name).expect("stat present")
    }

    /// Drops series out of the window or of forgotten processes, then
    /// evicts down to the cap.
    fn forget(&mut self, tick: u64, time: f64) {
        let window = self.options.points as u64;
        let forget_after = self.options.forget_after.as_secs_f64();
        let (times, next_tick) = (&self.times, self.next_tick);
        let mut dropped = 0;
        self.stats.retain(|_, stat| {
            stat.processes.retain(|_, series| {
                let keep = series.last_tick + window > tick
                    && time_of(times, next_tick, series.last_tick)
                        .is_some_and(|last| time - last <= forget_after);
                dropped += usize::from(!keep);
                keep
            });
            let keep = stat.total.last_tick + window > tick || !stat.processes.is_empty();
            dropped += usize::from(!keep);
            keep
        });
        self.series -= dropped;
        if self.series > self.options.max_series {
            self.evict(self.series - self.options.max_series);
        }
    }

    /// Evicts `excess` series: least recently updated first, per-process
    /// before host-wide, and among equals the newest first.
    fn evict(&mut self, excess: usize) {
        let mut candidates: Vec<EvictionOrder> = Vec::with_capacity(self.series);
        for (name, stat) in &self.stats {
            // Evicting a host-wide series takes its stat's process series
            // with it; sorting puts it after them when they are as recent.
            let total_last = stat.total.last_tick;
            candidates.push((
                total_last,
                true,
                std::cmp::Reverse(stat.total.created_tick),
                Arc::clone(name),
                None,
            ));
            for (key, series) in &stat.processes {
                candidates.push((
                    series.last_tick,
                    false,
                    std::cmp::Reverse(series.created_tick),
                    Arc::clone(name),
                    Some(*key),
                ));
            }
        }
        let excess = excess.min(candidates.len());
        if excess < candidates.len() {
            candidates.select_nth_unstable(excess);
        }
        candidates.truncate(excess);
        for (_, _, _, name, process) in candidates {
            let Some(stat) = self.stats.get_mut(&name) else {
                continue;
            };
            match process {
                Some(key) => {
                    if stat.processes.remove(&key).is_some() {
                        self.series -= 1;
                        self.evicted += 1;
                    }
                }
                None => {
                    self.series -= 1 + stat.processes.len();
                    self.evicted += 1 + stat.processes.len() as u64;
                    self.stats.remove(&name);
                }
            }
        }
    }

    /// The latest tick of every stat, sorted by name.
    pub fn latest(&self) -> Vec<Latest> {
        let Some(tick) = self.next_tick.checked_sub(1) else {
            return Vec::new();
        };
        let mut latest: Vec<Latest> = self
            .stats
            .iter()
            .map(|(name, stat)| {
                let counter = self.is_counter(name);
                let mut processes: Vec<(ProcessKey, f64, Option<f64>)> = stat
                    .processes
                    .iter()
                    .filter_map(|(key, series)| {
                        let value = series.at(tick)?;
                        let rate = counter
                            .then(|| self.process_rate(series, *key, tick))
                            .filter(|r| !r.is_nan());
                        Some((*key, value, rate))
                    })
                    .collect();
                processes.sort_by_key(|(key, _, _)| *key);
                Latest {
                    name: Arc::clone(name),
                    counter,
                    value: stat.total.at(tick).unwrap_or(f64::NAN),
                    rate: counter
                        .then(|| stat.total_rate.at(tick))
                        .flatten()
                        .filter(|r| !r.is_nan()),
                    processes,
                }
            })
            .collect();
        latest.sort_by(|a, b| a.name.cmp(&b.name));
        latest
    }

    /// The rate of a process series at `tick`, as recorded into the total.
    fn process_rate(&self, series: &Series, key: ProcessKey, tick: u64) -> f64 {
        let Some(value) = series.at(tick).filter(|v| !v.is_nan()) else {
            return f64::NAN;
        };
        let Some(time) = time_of(&self.times, self.next_tick, tick) else {
            return f64::NAN;
        };
        match series.previous(tick) {
            Some((before_tick, before)) => time_of(&self.times, self.next_tick, before_tick)
                .map_or(f64::NAN, |t| step_rate(before, value, time - t)),
            None => {
                let previous_time = tick
                    .checked_sub(1)
                    .and_then(|t| time_of(&self.times, self.next_tick, t));
                match (key.started_seconds(), previous_time) {
                    (Some(started), Some(previous)) if started > previous => {
                        step_rate(0.0, value, time - previous)
                    }
                    _ => f64::NAN,
                }
            }
        }
    }
}

/// Sorts series for eviction, first evicted first: last update tick, then
/// per-process (`false`) before host-wide, then the newest first; the stat
/// and process name the series.
type EvictionOrder = (
    u64,
    bool,
    std::cmp::Reverse<u64>,
    Arc<str>,
    Option<ProcessKey>,
);
