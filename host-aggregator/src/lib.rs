//! The host aggregator: reads every stats pipe under a directory safely,
//! sums them, and serves the result (work in progress: see the aggregator
//! issue).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod archive;
mod collector;
mod dashboard;
pub mod discovery;
mod error;
pub mod export;
pub mod gc;
pub mod history;
pub mod http;
pub mod procfs;
pub mod top;
mod reader;
mod source;

pub use collector::Collector;
pub use discovery::default_dir;
pub use error::Error;
pub use gc::{GcAction, GcOutcome, gc};
pub use procfs::ProcessStats;
pub use reader::read_one;
pub use source::{Pass, ReadOptions, RefuseReason, Source, Status, pid_from_path};
