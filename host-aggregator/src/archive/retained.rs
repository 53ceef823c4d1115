//! The retention state in the database: what makes one-shot archive runs
//! keep exited processes' counters as a long-lived `serve` does (see
//! [`crate::retention`] and "Counters across runs" in `docs/ARCHIVE.md`).
//!
//! A run restores the state stored for its host, reads its pass through it,
//! and stores what it holds afterwards, all in the run's transaction: the
//! `retention` table has one row per held line, `pid` 0 for the retained
//! totals of exited processes. A process is keyed by its PID, its start time
//! after boot (in nanoseconds; exact to a tick and moved by no step of the
//! wall clock, unlike the wall-clock start time `serve` keeps in memory) and
//! the boot it ran in.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stats_core::Value;

use super::HOST_PID;
use crate::procfs;
use crate::retention::{HeldLine, HeldProcess, RetainedState, Retention};

/// One row of the `retention` table (its host aside).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct StateRow {
    /// The process, or [`HOST_PID`] for the retained totals.
    pub(super) pid: i64,
    /// The boot the process ran in; `None` for the totals.
    pub(super) boot_id: Option<String>,
    /// Its start, nanoseconds after boot; `None` for the totals, or if
    /// `/proc` could not say.
    pub(super) started_ns: Option<i64>,
    /// The line's name.
    pub(super) name: String,
    /// `"counter"` or `"histogram"` (a line of one).
    pub(super) kind: &'static str,
    /// The value if an integer.
    pub(super) int_value: Option<i64>,
    /// The value if a float (NULL in SQLite for NaN, with `int_value`).
    pub(super) float_value: Option<f64>,
}

impl StateRow {
    /// A row as read back: `kind` as stored.
    pub(super) fn read(
        pid: i64,
        boot_id: Option<String>,
        started_ns: Option<i64>,
        name: String,
        kind: &str,
        int_value: Option<i64>,
        float_value: Option<f64>,
    ) -> StateRow {
        StateRow {
            pid,
            boot_id,
            started_ns,
            name,
            kind: if kind == "histogram" {
                "histogram"
            } else {
                "counter"
            },
            int_value,
            float_value,
        }
    }

    fn line(&self) -> HeldLine {
        HeldLine {
            name: self.name.clone(),
            histogram: self.kind == "histogram",
            value: match (self.int_value, self.float_value) {
                (Some(i), _) => Value::Int(i),
                (None, Some(f)) => Value::Float(f),
                // SQLite stores a NaN as NULL.
                (None, None) => Value::Float(f64::NAN),
            },
        }
    }

    fn of_line(
        pid: u32,
        boot_id: Option<&str>,
        started: Option<SystemTime>,
        line: &HeldLine,
    ) -> StateRow {
        let (int_value, float_value) = match line.value {
            Value::Int(i) => (Some(i), None),
            Value::Float(f) => (None, Some(f)),
        };
        StateRow {
            pid: i64::from(pid),
            boot_id: boot_id.map(str::to_owned),
            started_ns: started
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_nanos()).ok()),
            name: line.name.clone(),
            kind: if line.histogram {
                "histogram"
            } else {
                "counter"
            },
            int_value,
            float_value,
        }
    }
}

/// The start-time function of an archive run's [`Retention`]: the start
/// after boot, as that long after the epoch (it is only compared).
fn start_after_boot(pid: u32) -> Option<SystemTime> {
    procfs::started_after_boot(pid).ok().map(|d| UNIX_EPOCH + d)
}

/// The retention `rows` describe, for a run in boot `boot` (`None`: this
/// boot's ID is unknown, so every stored process is taken as of this boot).
/// A process stored under another boot is folded into the totals at once.
pub(super) fn restore(rows: &[StateRow], boot: Option<&str>) -> Retention {
    let mut processes: BTreeMap<i64, HeldProcess> = BTreeMap::new();
    let mut earlier_boot = Vec::new();
    let mut totals = Vec::new();
    for row in rows {
        if row.pid == i64::from(HOST_PID) {
            totals.push(row.line());
            continue;
        }
        let Ok(pid) = u32::try_from(row.pid) else {
            continue;
        };
        if boot.is_some() && row.boot_id.as_deref() != boot {
            earlier_boot.push(pid);
        }
        let process = processes.entry(row.pid).or_insert_with(|| HeldProcess {
            pid,
            started: row
                .started_ns
                .and_then(|ns| u64::try_from(ns).ok())
                .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns)),
            lines: Vec::new(),
        });
        process.lines.push(row.line());
    }
    let state = RetainedState {
        processes: processes.into_values().collect(),
        totals,
    };
    let mut retention = Retention::restore(state, Box::new(start_after_boot));
    for pid in earlier_boot {
        retention.fold_process(pid);
    }
    retention
}

/// The rows to store for `state`, its processes filed under `boot`.
pub(super) fn rows_of(state: RetainedState, boot: Option<&str>) -> Vec<StateRow> {
    let mut rows: Vec<StateRow> = state
        .totals
        .iter()
        .map(|line| StateRow::of_line(HOST_PID, None, None, line))
        .collect();
    for process in &state.processes {
        rows.extend(
            process
                .lines
                .iter()
                .map(|line| StateRow::of_line(process.pid, boot, process.started, line)),
        );
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: i64, boot: &str, name: &str, value: Value) -> StateRow {
        StateRow::of_line(
            u32::try_from(pid).unwrap(),
            (pid != 0).then_some(boot),
            (pid != 0).then(|| UNIX_EPOCH + Duration::from_secs(5)),
            &HeldLine {
                name: name.into(),
                histogram: false,
                value,
            },
        )
    }

    #[test]
    fn rows_round_trip_and_a_process_of_another_boot_is_folded() {
        let rows_in = vec![
            row(0, "b1", "jobs", Value::Int(40)),
            row(0, "b1", "load_total", Value::Float(1.5)),
            row(1, "b1", "jobs", Value::Int(2)),
            row(4_000_000, "b0", "jobs", Value::Int(7)),
        ];
        let retention = restore(&rows_in, Some("b1"));
        let out = rows_of(retention.state(), Some("b1"));
        let jobs_total = out.iter().find(|r| r.pid == 0 && r.name == "jobs");
        assert_eq!(jobs_total.and_then(|r| r.int_value), Some(47), "{out:?}");
        let float = out.iter().find(|r| r.name == "load_total");
        assert_eq!(float.and_then(|r| r.float_value), Some(1.5));
        assert!(out.iter().all(|r| r.pid != 4_000_000), "{out:?}");
        assert_eq!(
            out.iter().find(|r| r.pid == 1),
            Some(&row(1, "b1", "jobs", Value::Int(2)))
        );
        assert_eq!(restore(&out, Some("b1")).state(), retention.state());
        // A NaN stored as NULL comes back a NaN.
        let nan = StateRow {
            float_value: None,
            ..row(0, "b1", "x", Value::Float(f64::NAN))
        };
        assert!(matches!(nan.line().value, Value::Float(f) if f.is_nan()));
    }
}
