//! Traces across processes (issue 16): the aggregator reads every
//! `<dir>/traces/<pid>.traces` FIFO on demand only, never in the regular
//! pass, and serves the recent traces (appstats' index), one trace whole
//! or as a timeline SVG, and "the next trace whose root matches" (monkit's
//! preselect).
//!
//! - [`read`]: finding and reading the trace FIFOs through the safe reader
//!   (the same checks, deadline, byte cap and retries as `.stats`), and
//!   parsing their JSON lines into [`Record`]s;
//! - [`record`]: a trace, whole or short, and its JSON line;
//! - [`query`]: what a request or the command line asks for (a task regex,
//!   a minimum duration, a limit, a PID, a timeout) and the index it gets;
//! - [`newest`]: the newest records of a read, kept in a bounded heap;
//! - [`shared`]: one read shared by concurrent requests, and the gate of
//!   single-pipe reads;
//! - [`svg`]: the timeline;
//! - [`answer`]: the routes' replies; [`next`]: the wait for the next trace.

pub mod answer;
pub mod newest;
pub mod next;
pub mod query;
pub mod read;
pub mod record;
pub mod shared;
pub mod svg;

pub use query::{IndexQuery, NextQuery};
pub use read::{OneTrace, TraceReader, TraceSet};
pub use record::{Record, Short};
