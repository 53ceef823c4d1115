//! The host aggregator: reads every stats pipe under a directory safely,
//! sums them, and serves the result (work in progress: see the aggregator
//! issue).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod source;

pub use error::Error;
pub use source::{Pass, ReadOptions, RefuseReason, Source, Status};
