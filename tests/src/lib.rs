//! Shared helpers for the end-to-end tests in `tests/tests/`.
#![forbid(unsafe_code)]

pub mod archive;
pub mod bindings;
pub mod calls;
pub mod faults;
pub mod hostile;
pub mod http_client;
pub mod kinds;
pub mod live;
pub mod ports;
pub mod serve;
pub mod traced;
pub mod writer_program;
