//! Record stats in-process and speak the `name: value` line format.
//!
//! `stats-core` is the part of stats-pipe with no I/O: a [`Registry`] of
//! stats recorded by name ([`incr`], [`set`], [`Registry::record`]) or
//! through cheap typed handles ([`Counter`], [`Gauge`], [`Histogram`] with
//! its [`Timer`], and monkit-style [`Task`]s, whose nested runs count call edges and
//! form traces: [`span`], [`trace`]); the kinds a reader needs to
//! merge them right ([`kinds`], [`histogram_lines`], [`buckets`]); the line format ([`mod@format`], [`tags`]); a
//! streaming [`Parser`] that skips and counts bad lines; the snapshot
//! [`envelope`] that lets a reader detect torn snapshots; and the
//! pipestatic-compatible [`merge`] that sums snapshots across processes.
//!
//! Semantics follow the Python library pipestatic: `incr` of a missing stat
//! starts it at the given amount, and once a stat is a float it stays a
//! float, through every hop.
//!
//! ```
//! use stats_core::{Registry, Snapshot, Value};
//!
//! let registry = Registry::new();
//! registry.incr("requests", 1);
//! registry.incr("requests", 2);
//! registry.set("load avg", 0.5);
//! let errors = registry.counter("http.errors[code=500]");
//! errors.incr();
//!
//! let mut text = Vec::new();
//! registry.render_into(&mut text);
//! assert_eq!(
//!     String::from_utf8(text.clone()).unwrap(),
//!     "http.errors[code=500]: 1\nload avg: 0.5\nrequests: 3\n"
//! );
//!
//! // Another process's snapshot, read back and summed with ours.
//! let (theirs, bad_lines) = Snapshot::parse(b"requests: 4\nload avg: 1.0\nnot a stat\n", 4096);
//! assert_eq!(bad_lines.count(), 1);
//! let host = stats_core::merge::sum([&registry.snapshot(), &theirs]);
//! assert_eq!(host.get("requests"), Some(Value::Int(7)));
//! assert_eq!(host.get("load avg"), Some(Value::Float(1.5)));
//! ```
#![forbid(unsafe_code)]

pub mod buckets;
mod cell;
mod clock;
pub mod envelope;
pub mod format;
mod handles;
mod histogram;
pub mod histogram_lines;
pub mod kinds;
pub mod merge;
pub mod name;
mod parse;
mod registry;
mod snapshot;
pub mod tags;
mod task;
mod value;

pub use cell::Kind;
pub use handles::{Counter, Gauge};
pub use histogram::{Distribution, Histogram, QUANTILES, Timer};
pub use parse::{DEFAULT_MAX_LINE, ErrorLog, KEPT_ERRORS, ParseError, ParseErrorKind, Parser};
pub use registry::Registry;
pub use snapshot::{Entry, Snapshot};
pub use task::span::SpanParent;
pub use task::{Outcome, Task, TaskGuard, TaskOutcomes};
pub use task::{span, trace};
pub use trace::{Trace, Tracer};
pub use value::Value;

/// Adds `by` to the stat `name` in the process-wide registry (see
/// [`Registry::incr`]).
#[inline]
pub fn incr(name: &str, by: impl Into<Value>) {
    Registry::global().incr(name, by);
}

/// Sets the stat `name` in the process-wide registry (see [`Registry::set`]).
#[inline]
pub fn set(name: &str, value: impl Into<Value>) {
    Registry::global().set(name, value);
}

/// A counter handle on the process-wide registry.
pub fn counter(name: &str) -> Counter {
    Registry::global().counter(name)
}

/// A gauge handle on the process-wide registry.
pub fn gauge(name: &str) -> Gauge {
    Registry::global().gauge(name)
}

/// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
