//! Shared helpers for the end-to-end tests in `tests/tests/`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod hostile;
pub mod serve;
