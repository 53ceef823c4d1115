//! The host aggregator: reads every stats pipe under a directory safely,
//! sums them, and serves the result.
//!
//! Reading: [`Collector::collect`] does one pass (discover `*.stats`, read
//! every pipe in one epoll loop under one deadline, sum the good ones);
//! every [`Source`] gets a [`Status`]. [`read_one`] reads one pipe the same
//! way; [`gc()`] removes stale pipes, and
//! [`gc_sweeper`] does it every few seconds in the background for `serve`.
//!
//! ```
//! use host_aggregator::{Collector, ReadOptions, RefuseReason, Status};
//!
//! let dir = std::env::temp_dir().join(format!("host-aggregator-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! // A planted regular file is refused, never read as stats.
//! std::fs::write(dir.join("1.stats"), "planted: 1\n").unwrap();
//! let mut collector = Collector::new(ReadOptions::new(&dir));
//! let pass = collector.collect().unwrap();
//! assert_eq!(pass.sources[0].status, Status::Refused(RefuseReason::NotFifo));
//! assert_eq!(pass.sources[0].status.to_string(), "refused (not_fifo)");
//! assert!(pass.merged.is_empty());
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![forbid(unsafe_code)]

pub mod archive;
pub mod args;
mod collector;
mod connections;
mod dashboard;
pub mod discovery;
mod error;
pub mod export;
pub mod funcs;
pub mod gc;
pub mod gc_sweeper;
pub mod glob;
pub mod history;
pub mod http;
mod pass_cache;
pub mod procfs;
mod reader;
mod reply;
mod retention;
mod routes;
mod rules;
mod single_flight;
mod source;
pub mod top;
pub mod traces;

pub use collector::Collector;
pub use discovery::default_dir;
pub use error::Error;
pub use gc::{GcAction, GcOutcome, gc};
pub use procfs::ProcessStats;
pub use reader::read_one;
pub use rules::{MergeOverride, MergeOverrides};
pub use source::{Pass, ReadOptions, RefuseReason, Source, Status, pid_from_path};
