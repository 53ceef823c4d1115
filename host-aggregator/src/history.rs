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
//! Which stats are counters: a [`CounterHint`], when set, decides first;
//! then the kinds our writers declared in the last recorded pass
//! ([`Pass::kinds`]): a declared counter and a histogram's `.count`, `.sum`
//! and bucket lines are counters, everything else our writers serve is a
//! gauge. For a foreign writer's stats (which declare nothing) a stat
//! counts as a counter while no process's value of it has ever decreased
//! (or been negative); a gauge that has only grown so far looks like a
//! counter until it first falls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::export::json::{write_string, write_value};
use crate::export::unix_seconds;
use crate::glob::Glob;
pub use crate::glob::glob_match;
use crate::{Pass, Source};
use stats_core::Value;

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

/// Tells whether a stat is a counter (`Some(true)`), a gauge
/// (`Some(false)`), or unknown (`None`: the history's own guess applies).
pub type CounterHint = Box<dyn Fn(&str) -> Option<bool> + Send + Sync>;

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

/// A fixed-capacity ring of `f64`: pushing onto a full ring overwrites the
/// oldest value. Grows as filled, never past its capacity.
#[derive(Clone, Debug)]
struct Ring {
    values: Vec<f64>,
    /// Index of the oldest value once the ring is full.
    oldest: usize,
    capacity: usize,
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        Ring {
            values: Vec::new(),
            oldest: 0,
            capacity: capacity.max(1),
        }
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn push(&mut self, value: f64) {
        if self.values.len() < self.capacity {
            if self.values.len() == self.values.capacity() {
                // Doubling, but never past the capacity, so a full ring holds
                // exactly `capacity` slots (Vec's own growth could leave up to
                // twice that).
                let grow = self
                    .values
                    .len()
                    .max(4)
                    .min(self.capacity - self.values.len());
                self.values.reserve_exact(grow);
            }
            self.values.push(value);
        } else {
            self.values[self.oldest] = value;
            self.oldest = (self.oldest + 1) % self.capacity;
        }
    }

    /// The `i`-th value, oldest first.
    fn get(&self, i: usize) -> f64 {
        self.values[(self.oldest + i) % self.values.len()]
    }

    fn last(&self) -> Option<f64> {
        (!self.values.is_empty()).then(|| self.get(self.values.len() - 1))
    }

    fn heap_bytes(&self) -> usize {
        self.values.capacity() * size_of::<f64>()
    }
}

/// The values of one series: a ring ending at tick `last_tick`.
#[derive(Clone, Debug)]
struct Series {
    values: Ring,
    last_tick: u64,
    created_tick: u64,
}

impl Series {
    fn new(capacity: usize, tick: u64) -> Series {
        Series {
            values: Ring::new(capacity),
            last_tick: tick,
            created_tick: tick,
        }
    }

    /// Records `value` at `tick`, NaN for the ticks missed since the last
    /// update.
    fn record(&mut self, tick: u64, value: f64) {
        if self.values.len() > 0 {
            let missed = tick.saturating_sub(self.last_tick + 1);
            for _ in 0..missed.min(self.values.capacity as u64) {
                self.values.push(f64::NAN);
            }
        }
        self.values.push(value);
        self.last_tick = tick;
    }

    fn first_tick(&self) -> u64 {
        self.last_tick + 1 - self.values.len() as u64
    }

    /// The value at `tick`, if the ring covers it.
    fn at(&self, tick: u64) -> Option<f64> {
        let first = self.first_tick();
        (tick >= first && tick <= self.last_tick).then(|| self.values.get((tick - first) as usize))
    }

    /// The latest value before `tick` that is not NaN, with its tick.
    fn previous(&self, tick: u64) -> Option<(u64, f64)> {
        let first = self.first_tick();
        let mut k = tick.min(self.last_tick + 1);
        while k > first {
            k -= 1;
            let value = self.values.get((k - first) as usize);
            if !value.is_nan() {
                return Some((k, value));
            }
        }
        None
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

/// Most `stat=` globs in one `/history` query.
pub const MAX_QUERY_GLOBS: usize = 32;

/// What `/history` returns: which stats and processes, since when.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// Stat name globs (`*`, `?`); any match selects a stat. Empty: all.
    pub stats: Vec<String>,
    /// `stats` compiled.
    globs: Vec<Glob>,
    /// Only this PID's series (the host-wide total is still given).
    pub pid: Option<u32>,
    /// Only points collected after this time, Unix seconds.
    pub since: Option<f64>,
    /// Leave out the per-process series.
    pub totals_only: bool,
    /// Add every source of the latest pass with its status and its
    /// process's figures (memory, CPU, threads, descriptors, uptime).
    pub sources: bool,
}

impl Query {
    /// Reads a query string (`stat=a*&stat=b&pid=12&since=1763780000.5`;
    /// `name` is taken as `stat`, `totals=1` sets [`Query::totals_only`]).
    /// Unknown keys are ignored.
    ///
    /// # Errors
    /// A message naming the key whose value is not a number, a glob too
    /// long to match in bounded time (see [`Glob`]), or more than
    /// [`MAX_QUERY_GLOBS`] globs.
    pub fn parse(query: &str) -> Result<Query, String> {
        let mut parsed = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "stat" | "name" => {
                    if parsed.stats.len() == MAX_QUERY_GLOBS {
                        return Err(format!("more than {MAX_QUERY_GLOBS} stat globs"));
                    }
                    let glob = Glob::new(&value).map_err(|e| format!("bad stat glob: {e}"))?;
                    parsed.globs.push(glob);
                    parsed.stats.push(value);
                }
                "pid" => {
                    parsed.pid = Some(value.parse().map_err(|_| format!("bad pid {value:?}"))?);
                }
                "since" => {
                    let since: f64 = value
                        .parse()
                        .map_err(|_| format!("bad since {value:?}: expected Unix seconds"))?;
                    parsed.since = Some(since);
                }
                "totals" => parsed.totals_only = value != "0",
                "sources" => parsed.sources = value != "0",
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// Whether the query asks for stat `name`.
    pub fn selects(&self, name: &str) -> bool {
        self.globs.is_empty() || self.globs.iter().any(|glob| glob.matches(name))
    }
}

/// Bounded history of passes (see the module docs).
pub struct History {
    options: HistoryOptions,
    hint: Option<CounterHint>,
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
            hint: None,
            next_tick: 0,
            stats: HashMap::new(),
            series: 0,
            evicted: 0,
            started: HashMap::new(),
            declared: stats_core::kinds::Kinds::new(),
            our_gauges: std::collections::HashSet::new(),
        }
    }

    /// Uses `hint` to tell counters from gauges where it knows.
    pub fn set_counter_hint(&mut self, hint: CounterHint) {
        self.hint = Some(hint);
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
        self.hint
            .as_ref()
            .and_then(|hint| hint(name))
            .or_else(|| crate::retention::is_counter_line(&self.declared, name))
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

    /// `/history` as JSON (the shape is in host-aggregator's README):
    /// `{"interval", "points", "max_series", "series", "evicted", "times":
    /// [...], "stats": [{"name", "counter", "total": {"values", "rates"},
    /// "processes": [{"pid", "started", "values", "rates"}]}]}`. Values line
    /// up with `times`; a missing point, NaN or an infinity is `null`;
    /// `rates` is there for counters only. With [`Query::sources`] and a
    /// `pass`, a `"sources"` array lists the pass's sources (see
    /// [`write_sources`]).
    pub fn to_json(&self, query: &Query, pass: Option<&Pass>) -> Vec<u8> {
        let selected: Vec<Arc<str>> = self
            .stats
            .keys()
            .filter(|n| query.selects(n))
            .cloned()
            .collect();
        self.to_json_of(&selected, query, pass)
    }

    /// Every stat name held (cheap clones), so a caller can match a
    /// query's globs against them without holding the history's lock.
    pub fn stat_names(&self) -> Vec<Arc<str>> {
        self.stats.keys().cloned().collect()
    }

    /// [`History::to_json`] for the stats in `selected` (names no longer
    /// held are left out); `query`'s globs are not matched again.
    pub fn to_json_of(&self, selected: &[Arc<str>], query: &Query, pass: Option<&Pass>) -> Vec<u8> {
        let oldest = self.next_tick - self.times.len() as u64;
        let first = (oldest..self.next_tick)
            .find(|&tick| {
                query.since.is_none_or(|since| {
                    time_of(&self.times, self.next_tick, tick).is_some_and(|t| t > since)
                })
            })
            .unwrap_or(self.next_tick);
        let ticks = first..self.next_tick;
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(b"{\"interval\":");
        write_value(&mut buf, Value::Float(self.options.interval.as_secs_f64()));
        for (key, value) in [
            ("points", self.options.points as u64),
            ("max_series", self.options.max_series as u64),
            ("series", self.series as u64),
            ("evicted", self.evicted),
        ] {
            buf.push(b',');
            write_string(&mut buf, key);
            buf.push(b':');
            write_value(&mut buf, Value::from(value));
        }
        buf.extend_from_slice(b",\"times\":[");
        for (i, tick) in ticks.clone().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_number(
                &mut buf,
                time_of(&self.times, self.next_tick, tick).unwrap_or(f64::NAN),
            );
        }
        buf.extend_from_slice(b"],\"stats\":[");
        let mut names: Vec<(&Arc<str>, &StatHistory)> = selected
            .iter()
            .filter_map(|name| self.stats.get_key_value(name))
            .collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        names.dedup_by(|a, b| a.0 == b.0);
        for (i, (name, stat)) in names.into_iter().enumerate() {
            let counter = self.is_counter(name);
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"name\":");
            write_string(&mut buf, name);
            buf.extend_from_slice(b",\"counter\":");
            buf.extend_from_slice(if counter { b"true" } else { b"false" });
            buf.extend_from_slice(b",\"total\":{\"values\":");
            write_points(&mut buf, ticks.clone(), |tick| stat.total.at(tick));
            if counter {
                buf.extend_from_slice(b",\"rates\":");
                write_points(&mut buf, ticks.clone(), |tick| stat.total_rate.at(tick));
            }
            buf.extend_from_slice(b"},\"processes\":[");
            if !query.totals_only {
                let mut keys: Vec<&ProcessKey> = stat
                    .processes
                    .keys()
                    .filter(|key| query.pid.is_none_or(|pid| key.pid == pid))
                    .collect();
                keys.sort();
                for (j, key) in keys.into_iter().enumerate() {
                    let series = &stat.processes[key];
                    if j > 0 {
                        buf.push(b',');
                    }
                    buf.extend_from_slice(b"{\"pid\":");
                    write_value(&mut buf, Value::from(key.pid));
                    buf.extend_from_slice(b",\"started\":");
                    write_number(&mut buf, key.started_seconds().unwrap_or(f64::NAN));
                    buf.extend_from_slice(b",\"values\":");
                    write_points(&mut buf, ticks.clone(), |tick| series.at(tick));
                    if counter {
                        buf.extend_from_slice(b",\"rates\":");
                        write_points(&mut buf, ticks.clone(), |tick| {
                            series
                                .at(tick)
                                .map(|_| self.process_rate(series, *key, tick))
                        });
                    }
                    buf.push(b'}');
                }
            }
            buf.extend_from_slice(b"]}");
        }
        buf.push(b']');
        if let (true, Some(pass)) = (query.sources, pass) {
            buf.extend_from_slice(b",\"sources\":");
            write_sources(&mut buf, pass);
        }
        buf.push(b'}');
        buf
    }
}

/// Appends `[{"pid", "path", "status", "detail", "foreign", "lines",
/// "bad_lines", "last_seen", "process": {"rss_bytes", "cpu_seconds",
/// "threads", "open_fds", "uptime_seconds"} | null}, ...]`: every source of
/// `pass`, with its live process's figures read from `/proc` now.
pub fn write_sources(buf: &mut Vec<u8>, pass: &Pass) {
    buf.push(b'[');
    for (i, source) in pass.sources.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"pid\":");
        match source.pid {
            Some(pid) => write_value(buf, Value::from(pid)),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"path\":");
        write_string(buf, &source.path.to_string_lossy());
        buf.extend_from_slice(b",\"status\":");
        write_string(buf, source.status.as_str());
        buf.extend_from_slice(b",\"detail\":");
        write_string(buf, &source.status.to_string());
        buf.extend_from_slice(b",\"foreign\":");
        buf.extend_from_slice(if source.foreign { b"true" } else { b"false" });
        buf.extend_from_slice(b",\"lines\":");
        write_value(buf, Value::from(source.lines));
        buf.extend_from_slice(b",\"bad_lines\":");
        write_value(buf, Value::from(source.bad_lines));
        buf.extend_from_slice(b",\"last_seen\":");
        write_number(buf, source.last_seen.map_or(f64::NAN, unix_seconds));
        buf.extend_from_slice(b",\"process\":");
        crate::export::json::write_process_figures(buf, source);
        buf.push(b'}');
    }
    buf.push(b']');
}

/// A thread that runs `tick` every interval on a fixed schedule (a slow
/// tick delays the next one, never shifts every later one) until dropped.
/// `serve` records a pass into its [`History`] on each tick.
pub struct Recorder {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    /// Starts calling `tick` now and then every `interval`.
    pub fn start(interval: Duration, mut tick: impl FnMut() + Send + 'static) -> Recorder {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut next = std::time::Instant::now();
            loop {
                tick();
                next += interval;
                let now = std::time::Instant::now();
                if next < now {
                    // Fell behind (a pass longer than the interval): skip the
                    // missed beats rather than run them back to back.
                    next = now;
                }
                match stopped.recv_timeout(next - now) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    // Dropping the sender (or sending) stops the thread.
                    _ => return,
                }
            }
        });
        Recorder {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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

/// Time of `tick`, if still in the ring (`next_tick` is the next tick's number).
fn time_of(times: &Ring, next_tick: u64, tick: u64) -> Option<f64> {
    let oldest = next_tick - times.len() as u64;
    (tick >= oldest && tick < next_tick).then(|| times.get((tick - oldest) as usize))
}

/// Per-second rate of a counter that went from `before` to `now` in
/// `seconds`: a decrease is a reset, so the new value is what was counted.
pub fn step_rate(before: f64, now: f64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return f64::NAN;
    }
    let delta = if now < before { now } else { now - before };
    delta / seconds
}

fn write_number(buf: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        write_value(buf, Value::Float(value));
    } else {
        buf.extend_from_slice(b"null");
    }
}

fn write_points(buf: &mut Vec<u8>, ticks: std::ops::Range<u64>, at: impl Fn(u64) -> Option<f64>) {
    buf.push(b'[');
    for (i, tick) in ticks.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_number(buf, at(tick).unwrap_or(f64::NAN));
    }
    buf.push(b']');
}

/// Decodes `%XX` escapes and `+` (a space) in a query-string value; a bad
/// escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;

    fn options(points: usize, max_series: usize) -> HistoryOptions {
        HistoryOptions {
            points,
            max_series,
            ..HistoryOptions::new()
        }
    }

    fn key(pid: u32, started: u64) -> ProcessKey {
        ProcessKey {
            pid,
            started_ms: started * 1000,
        }
    }

    /// One tick: each process's `(stat, value)` pairs, totals summed.
    fn tick(history: &mut History, time: f64, processes: &[(ProcessKey, &[(&str, f64)])]) {
        let mut totals: Vec<(&str, f64)> = Vec::new();
        for (_, stats) in processes {
            for &(name, value) in *stats {
                match totals.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, sum)) => *sum += value,
                    None => totals.push((name, value)),
                }
            }
        }
        history.record_values(
            time,
            totals,
            processes
                .iter()
                .map(|(key, stats)| (*key, stats.iter().copied())),
        );
    }

    fn json(history: &History, query: &str) -> Json {
        serde_json::from_slice(&history.to_json(&Query::parse(query).unwrap(), None)).unwrap()
    }

    fn floats(value: &Json) -> Vec<Option<f64>> {
        value.as_array().unwrap().iter().map(Json::as_f64).collect()
    }

    #[test]
    fn ring_really_trims_and_keeps_the_newest() {
        let mut ring = Ring::new(5);
        for i in 0..12 {
            ring.push(f64::from(i));
        }
        assert_eq!(ring.len(), 5);
        assert_eq!(
            ring.values.capacity(),
            5,
            "a full ring holds exactly its capacity"
        );
        let kept: Vec<f64> = (0..ring.len()).map(|i| ring.get(i)).collect();
        assert_eq!(kept, [7.0, 8.0, 9.0, 10.0, 11.0]);
        assert_eq!(ring.last(), Some(11.0));
    }

    #[test]
    fn history_trims_every_series_to_the_window() {
        let mut history = History::new(options(4, 100));
        let p = key(7, 1);
        for i in 0..10 {
            tick(
                &mut history,
                1000.0 + f64::from(i),
                &[(p, &[("x", f64::from(i))])],
            );
        }
        assert_eq!(history.ticks(), 4);
        let stat = &history.stats["x"];
        assert_eq!(stat.total.values.len(), 4);
        assert_eq!(stat.total_rate.values.len(), 4);
        assert_eq!(stat.processes[&p].values.len(), 4);
        let body = json(&history, "");
        assert_eq!(
            floats(&body["times"]),
            [Some(1006.0), Some(1007.0), Some(1008.0), Some(1009.0)]
        );
        let values = floats(&body["stats"][0]["total"]["values"]);
        assert_eq!(values, [Some(6.0), Some(7.0), Some(8.0), Some(9.0)]);
        let values = floats(&body["stats"][0]["processes"][0]["values"]);
        assert_eq!(values, [Some(6.0), Some(7.0), Some(8.0), Some(9.0)]);
    }

    #[test]
    fn point_times_are_the_collection_times() {
        // Irregular times (a slow pass, a skipped beat): every point keeps
        // the time its pass was taken, not start + i * interval.
        let collected = [
            1_763_780_000.25,
            1_763_780_001.27,
            1_763_780_002.9,
            1_763_780_010.0,
        ];
        let mut history = History::new(options(100, 100));
        for (i, time) in collected.iter().enumerate() {
            tick(&mut history, *time, &[(key(1, 5), &[("n", i as f64)])]);
        }
        let body = json(&history, "");
        let times: Vec<f64> = floats(&body["times"]).into_iter().flatten().collect();
        assert_eq!(times, collected);
        assert_eq!(history.times(), collected);
        // `since` keeps the points strictly after it.
        let body = json(&history, "since=1763780001.27");
        let times: Vec<f64> = floats(&body["times"]).into_iter().flatten().collect();
        assert_eq!(times, collected[2..]);
        assert_eq!(
            floats(&body["stats"][0]["total"]["values"]),
            [Some(2.0), Some(3.0)]
        );
    }

    #[test]
    fn record_uses_the_pass_start_time() {
        use stats_core::{Entry, Snapshot};
        let started = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(1_763_780_000_125);
        let mut source = Source::new(format!("/x/{}.stats", std::process::id()).into());
        source.status = crate::Status::Ok;
        source.snapshot = Snapshot::from_entries([Entry {
            name: "hits".into(),
            value: Value::Int(3),
        }]);
        let pass = Pass {
            started,
            duration: Duration::from_millis(3),
            merged: source.snapshot.clone(),
            kinds: Default::default(),
            sources: vec![source],
        };
        let mut history = History::new(HistoryOptions::new());
        history.record(&pass);
        assert_eq!(history.times(), [1_763_780_000.125]);
        let body = json(&history, "pid=0");
        assert_eq!(body["stats"][0]["processes"].as_array().unwrap().len(), 0);
        let body = json(&history, &format!("pid={}", std::process::id()));
        let process = &body["stats"][0]["processes"][0];
        assert_eq!(process["pid"], std::process::id());
        // The start time came from /proc: this test process started before now.
        assert!(process["started"].as_f64().unwrap() > 1.0e9);
        assert_eq!(floats(&process["values"]), [Some(3.0)]);
        let query = Query::parse("sources=1").unwrap();
        let body: Json = serde_json::from_slice(&history.to_json(&query, Some(&pass))).unwrap();
        let row = &body["sources"][0];
        assert_eq!(row["pid"], std::process::id());
        assert_eq!(row["status"], "ok");
        assert_eq!(row["last_seen"], Json::Null);
        assert!(row["process"]["rss_bytes"].as_u64().unwrap() > 0);
        assert!(row["process"]["threads"].as_u64().unwrap() >= 1);
    }

    #[test]
    fn declared_kinds_decide_and_only_foreign_stats_are_guessed() {
        use stats_core::kinds::{Kinds, WireKind};
        let source = |pid: u32, foreign: bool, text: &str| {
            let mut source = Source::new(format!("/x/{pid}.stats").into());
            source.status = crate::Status::Ok;
            source.foreign = foreign;
            source.snapshot = stats_core::Snapshot::parse(text.as_bytes(), 4096).0;
            source
        };
        let mut kinds = Kinds::new();
        kinds.declare("requests", WireKind::Counter);
        kinds.declare("lat", WireKind::Histogram);
        let mut history = History::new(HistoryOptions::new());
        for (i, n) in [1, 2, 3].into_iter().enumerate() {
            let ours = format!("requests: {n}\nqueue: {n}\nlat.count: {n}\nlat.max: {n}\n");
            let sources = vec![
                source(1, false, &ours),
                source(2, true, &format!("foreign.up: {n}\n")),
            ];
            let pass = Pass {
                started: std::time::UNIX_EPOCH + Duration::from_secs(10 + i as u64),
                duration: Duration::from_millis(1),
                merged: stats_core::merge::sum(sources.iter().map(|s| &s.snapshot)),
                kinds: kinds.clone(),
                sources,
            };
            history.record(&pass);
        }
        // Every stat only grew; only the declared ones and the foreign one
        // (guessed) are counters.
        for (name, want) in [
            ("requests", true),
            ("lat.count", true),
            ("lat.max", false),
            ("queue", false),
            ("foreign.up", true),
        ] {
            assert_eq!(history.is_counter(name), want, "{name}");
        }
    }

    #[test]
    fn recorder_ticks_on_schedule_and_stops_when_dropped() {
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = Arc::clone(&ticks);
        let recorder = Recorder::start(Duration::from_millis(20), move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(300));
        drop(recorder);
        let after_drop = ticks.load(std::sync::atomic::Ordering::SeqCst);
        // About 15; a loaded machine may run fewer, never none.
        assert!((2..=16).contains(&after_drop), "{after_drop}");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), after_drop);
    }

    #[test]
    fn rates_across_a_restart_never_go_negative() {
        let mut history = History::new(options(100, 100));
        let old = key(42, 100);
        let other = key(43, 100);
        // Both already running when first seen: no rate on the first tick.
        tick(
            &mut history,
            1000.0,
            &[(old, &[("req", 500.0)]), (other, &[("req", 10.0)])],
        );
        tick(
            &mut history,
            1001.0,
            &[(old, &[("req", 510.0)]), (other, &[("req", 12.0)])],
        );
        tick(
            &mut history,
            1002.0,
            &[(old, &[("req", 530.0)]), (other, &[("req", 14.0)])],
        );
        // PID 42 restarts at 1002.5 (same PID, new start time) and has
        // counted 7 by the next pass; the host total drops from 544 to 23.
        let new = ProcessKey {
            pid: 42,
            started_ms: 1_002_500,
        };
        tick(
            &mut history,
            1003.0,
            &[(new, &[("req", 7.0)]), (other, &[("req", 16.0)])],
        );
        tick(
            &mut history,
            1005.0,
            &[(new, &[("req", 17.0)]), (other, &[("req", 20.0)])],
        );
        let body = json(&history, "stat=req");
        let stat = &body["stats"][0];
        assert_eq!(stat["counter"], true);
        assert_eq!(
            floats(&stat["total"]["values"]),
            [
                Some(510.0),
                Some(522.0),
                Some(544.0),
                Some(23.0),
                Some(37.0)
            ]
        );
        // 7 new + 2 from the other process; then (10 + 4) over 2 s.
        assert_eq!(
            floats(&stat["total"]["rates"]),
            [None, Some(12.0), Some(22.0), Some(9.0), Some(7.0)]
        );
        let processes = stat["processes"].as_array().unwrap();
        assert_eq!(processes.len(), 3, "the restarted process is a new series");
        assert_eq!(
            floats(&processes[0]["rates"]),
            [None, Some(10.0), Some(20.0), None, None]
        );
        assert_eq!(
            floats(&processes[1]["rates"]),
            [None, None, None, Some(7.0), Some(5.0)]
        );
        let latest = history.latest();
        assert_eq!(latest[0].rate, Some(7.0));
        assert_eq!(latest[0].processes.len(), 2);
    }

    #[test]
    fn a_counter_reset_within_a_process_counts_its_new_value() {
        let mut history = History::new(options(100, 100));
        history.set_counter_hint(Box::new(|name| Some(name == "c")));
        let p = key(5, 10);
        for (i, value) in [100.0, 150.0, 4.0, 10.0].into_iter().enumerate() {
            tick(
                &mut history,
                2000.0 + i as f64,
                &[(p, &[("c", value), ("g", value)])],
            );
        }
        let body = json(&history, "");
        assert_eq!(body["stats"][0]["name"], "c");
        assert_eq!(
            floats(&body["stats"][0]["total"]["rates"]),
            [None, Some(50.0), Some(4.0), Some(6.0)]
        );
        // `g` is declared a gauge: no rates.
        assert_eq!(body["stats"][1]["counter"], false);
        assert!(body["stats"][1]["total"].get("rates").is_none());
    }

    #[test]
    fn without_a_hint_a_stat_that_ever_fell_is_a_gauge() {
        let mut history = History::new(options(100, 100));
        let p = key(5, 10);
        tick(
            &mut history,
            1.0,
            &[(p, &[("up", 1.0), ("load", 3.0), ("neg", -1.0)])],
        );
        tick(
            &mut history,
            2.0,
            &[(p, &[("up", 2.0), ("load", 4.0), ("neg", -1.0)])],
        );
        assert!(history.is_counter("up") && history.is_counter("load"));
        tick(
            &mut history,
            3.0,
            &[(p, &[("up", 3.0), ("load", 2.5), ("neg", -1.0)])],
        );
        assert!(history.is_counter("up"));
        assert!(!history.is_counter("load"));
        assert!(!history.is_counter("neg"));
        assert!(!history.is_counter("never seen"));
    }

    #[test]
    fn a_missed_tick_is_a_gap_and_the_rate_spans_it() {
        let mut history = History::new(options(100, 100));
        let (a, b) = (key(1, 1), key(2, 1));
        tick(
            &mut history,
            10.0,
            &[(a, &[("n", 0.0)]), (b, &[("n", 0.0)])],
        );
        tick(&mut history, 11.0, &[(b, &[("n", 1.0)])]);
        tick(
            &mut history,
            12.0,
            &[(a, &[("n", 8.0)]), (b, &[("n", 2.0)])],
        );
        let body = json(&history, "");
        let a_series = &body["stats"][0]["processes"][0];
        assert_eq!(floats(&a_series["values"]), [Some(0.0), None, Some(8.0)]);
        assert_eq!(floats(&a_series["rates"]), [None, None, Some(4.0)]);
    }

    #[test]
    fn memory_stays_bounded_with_thousands_of_series() {
        let points = 50;
        let max_series = 2_000;
        let mut history = History::new(options(points, max_series));
        let names: Vec<String> = (0..20).map(|i| format!("stat.{i}")).collect();
        // 500 processes × 20 stats = 10,000 per-process series wanted, every
        // tick, for 3 windows; process churn too (a tenth restart each tick).
        let mut established_early = 0;
        for t in 0..150u32 {
            let processes: Vec<(ProcessKey, Vec<(&str, f64)>)> = (0..500u32)
                .map(|pid| {
                    let generation = if pid % 10 == 0 { u64::from(t) } else { 0 };
                    let stats = names.iter().map(|n| (n.as_str(), f64::from(t))).collect();
                    (key(pid + 1, 1 + generation), stats)
                })
                .collect();
            let totals: Vec<(&str, f64)> = names
                .iter()
                .map(|n| (n.as_str(), 500.0 * f64::from(t)))
                .collect();
            history.record_values(
                f64::from(t),
                totals,
                processes
                    .iter()
                    .map(|(k, stats)| (*k, stats.iter().copied())),
            );
            assert!(
                history.series_count() <= max_series,
                "tick {t}: {}",
                history.series_count()
            );
            if t == 5 {
                established_early = established(&history);
            }
        }
        assert_eq!(history.series_count(), max_series);
        assert!(history.evicted() > 0);
        let counted: usize = history.stats.values().map(|s| 1 + s.processes.len()).sum();
        assert_eq!(counted, history.series_count());
        assert!(
            history.value_bytes() <= options(points, max_series).value_bytes_bound(names.len())
        );
        // Every host-wide series survived the pressure, with full windows.
        for name in &names {
            assert_eq!(history.stats[name.as_str()].total.values.len(), points);
        }
        // Established series were kept over newcomers: after the first
        // ticks (when the restarted processes' first series went stale and
        // their slots were handed on), the originals are never churned.
        assert_eq!(established(&history), established_early);
        // And nothing stale was kept while fresh series were turned away.
        let last = history.next_tick - 1;
        assert!(
            history
                .stats
                .values()
                .flat_map(|s| s.processes.values())
                .all(|s| s.last_tick == last)
        );
    }

    fn established(history: &History) -> usize {
        history
            .stats
            .values()
            .flat_map(|s| s.processes.values())
            .filter(|s| s.created_tick == 0)
            .count()
    }

    #[test]
    fn dead_processes_are_forgotten() {
        let mut history = History::new(HistoryOptions {
            forget_after: Duration::from_secs(5),
            ..options(100, 100)
        });
        let (dead, alive) = (key(1, 1), key(2, 1));
        tick(
            &mut history,
            0.0,
            &[(dead, &[("n", 1.0)]), (alive, &[("n", 1.0)])],
        );
        for t in 1..=5 {
            tick(&mut history, f64::from(t), &[(alive, &[("n", 1.0)])]);
        }
        assert_eq!(history.stats["n"].processes.len(), 2);
        tick(&mut history, 6.0, &[(alive, &[("n", 1.0)])]);
        assert_eq!(history.stats["n"].processes.len(), 1);
        assert_eq!(history.series_count(), 2);
    }

    #[test]
    fn queries_and_globs() {
        let query =
            Query::parse("stat=http.*&name=load%20avg&pid=12&since=17.5&totals=1&x=y").unwrap();
        assert_eq!(query.stats, ["http.*", "load avg"]);
        assert_eq!(query.pid, Some(12));
        assert_eq!(query.since, Some(17.5));
        assert!(query.totals_only);
        assert!(Query::parse("pid=x").is_err());
        assert!(Query::parse("since=yesterday").is_err());
        assert!(query.selects("http.x") && query.selects("load avg") && !query.selects("load"));
        // Globs are bounded in length (with a wildcard) and in number.
        let long = format!("stat=*{}b", "a".repeat(100_000));
        let error = Query::parse(&long).unwrap_err();
        assert!(error.contains("at most 127"), "{error}");
        let many = vec!["stat=a*"; MAX_QUERY_GLOBS + 1].join("&");
        assert!(Query::parse(&many).unwrap_err().contains("more than 32"));
        assert_eq!(percent_decode("a%2Cb+c%zz%"), "a,b c%zz%");
    }
}
