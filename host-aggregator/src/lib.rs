//! The host aggregator: not built yet (tracked by the aggregator issue).
//! Nothing here pretends to work.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
