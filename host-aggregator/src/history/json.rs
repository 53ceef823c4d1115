//! `/history` as JSON: the retained times and, per selected stat, its
//! host-wide and per-process values and rates.

use std::sync::Arc;

use stats_core::Value;

use super::series::time_of;
use super::{History, ProcessKey, Query, StatHistory};
use crate::Pass;
use crate::export::json::{write_sources, write_string, write_value};

impl History {
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
