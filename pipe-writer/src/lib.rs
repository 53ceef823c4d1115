//! Serve a process's stats as a live, `cat`-able FIFO at `<dir>/<pid>.stats`.
//!
//! [`start`] serves the process-wide [`stats_core::Registry`]; a [`Builder`]
//! picks the directory (else `STATS_PIPE_DIR`, else `/tmp/stats-pipe`), the
//! FIFO's mode and the registry. Every `open` of the path gets exactly one
//! snapshot, taken at that moment and wrapped in the envelope of FORMAT.md,
//! so `cat` prints it once and a reader can tell a complete snapshot from a
//! torn one. Dropping the [`Server`] (or [`Server::stop`]) stops serving and
//! removes the FIFO. The protocol, and why it is built this way, is in
//! FORMAT.md ("Serving protocol").
//!
//! Every snapshot also carries the process's own figures, as the reserved
//! `process.*` lines ([`process_stats`]): `process.rss_bytes`,
//! `process.cpu_seconds` (a `#counter`), `process.threads`,
//! `process.open_fds` and `process.uptime_seconds` (a `#max`). They are read
//! from `/proc/self` in the background, right after a serve (or when the
//! orphan sweeper wakes), at most every 5 s, so they are at most 7 s old
//! (uptime is exact): a snapshot that would carry older figures reads them
//! itself. [`Builder::process_stats`]`(false)` leaves them out.
//!
//! ```
//! use std::sync::Arc;
//! use stats_core::Registry;
//! use stats_core::envelope::{Verdict, verify};
//!
//! let registry = Arc::new(Registry::new());
//! registry.incr("requests", 3);
//! registry.set("load avg", 0.5);
//! let dir = std::env::temp_dir().join(format!("pipe-writer-doctest-{}", std::process::id()));
//! let server = pipe_writer::Builder::new()
//!     .dir(&dir)
//!     .registry(Arc::clone(&registry))
//!     .start()?;
//! let path = dir.join(format!("{}.stats", std::process::id()));
//! assert_eq!(server.path(), path);
//!
//! // What `cat` prints: one complete snapshot, taken when it opened the pipe.
//! let text = String::from_utf8(std::fs::read(&path)?)?;
//! let pid = std::process::id();
//! assert!(text.starts_with(&format!("#stats-pipe: 1\n#pid: {pid}\n#seq: 0\n#time: ")));
//! let Verdict::Complete { body, .. } = verify(text.as_bytes()) else { panic!("{text}") };
//! let (own, ours): (Vec<&str>, Vec<&str>) =
//!     text[body].lines().partition(|line| line.contains("process."));
//! // `#counter` tells a reader `requests` only counts up (FORMAT.md, kinds).
//! assert_eq!(ours, ["#counter requests: 1", "load avg: 0.5", "requests: 3"]);
//! // The process's own figures, sorted in among the stats.
//! let names: Vec<&str> = own.iter().map(|line| line.rsplit_once(": ").unwrap().0).collect();
//! assert_eq!(names, [
//!     "#counter process.cpu_seconds", "#max process.uptime_seconds",
//!     "process.cpu_seconds", "process.open_fds", "process.rss_bytes",
//!     "process.threads", "process.uptime_seconds",
//! ]);
//!
//! // Each open sees the stats of that moment.
//! registry.incr("requests", 1);
//! let text = String::from_utf8(std::fs::read(&path)?)?;
//! assert!(text.contains("\n#seq: 1\n") && text.contains("\nrequests: 4\n"));
//!
//! server.stop()?; // joins the serving threads and removes the FIFOs
//! assert!(!path.exists());
//! assert!(!dir.join(format!("traces/{pid}.traces")).exists());
//! // Only what our writers share is left: our private spare directory and
//! // the traces directory.
//! for entry in std::fs::read_dir(&dir)? {
//!     let name = entry?.file_name();
//!     let name = name.to_string_lossy();
//!     assert!(name.starts_with(pipe_writer::SPARE_DIR_PREFIX) || name == "traces", "{name:?}");
//! }
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

// Without the `writer` feature only the directory rules, the `/proc`
// figures and the error type are built: what the aggregator shares.
#[cfg(feature = "writer")]
mod counters;
#[cfg_attr(not(feature = "writer"), allow(dead_code))]
mod dir;
mod error;
#[cfg_attr(not(feature = "writer"), allow(dead_code))]
mod fifo;
#[cfg(feature = "writer")]
pub mod input;
#[cfg_attr(not(feature = "writer"), allow(dead_code))] // `holds_file` is shared
pub mod leftovers;
mod pipe_size;
#[cfg(feature = "writer")]
mod pool;
#[cfg_attr(not(feature = "writer"), allow(dead_code))] // its own-figures part serves
pub mod process_stats;
#[cfg(feature = "writer")]
mod reach;
#[cfg(feature = "writer")]
mod send;
#[cfg(feature = "writer")]
mod server;
#[cfg(feature = "writer")]
mod snapshot;
#[cfg(feature = "writer")]
mod sweep;
#[cfg_attr(not(feature = "writer"), allow(dead_code))] // `verify_traces` is shared
mod traces;

#[cfg(feature = "writer")]
pub use counters::ServeStats;
pub use dir::{
    DEFAULT_DIR, DIR_ENV, DIR_MODE, SPARE_DIR_MODE, SPARE_DIR_PREFIX, check_dir, default_dir,
    spare_dir_name,
};
pub use error::Error;
#[cfg(feature = "writer")]
pub use input::{span_line, span_reports};
pub use pipe_size::sized_by_our_writer;
#[cfg(feature = "writer")]
pub use reach::CHECK_AFTER_SERVES;
#[cfg(feature = "writer")]
pub use server::{Builder, DEFAULT_MODE, DEFAULT_STALL_TIMEOUT, Server, start};
pub use traces::{TRACES_DIR, TracesRead, verify_traces};
