//! Serving a process's stats through `<dir>/<pid>.stats`: not built yet
//! (tracked by the pipe-writer issue). Nothing here pretends to work.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
