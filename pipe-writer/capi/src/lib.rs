//! stats-pipe for programs that are not written in Rust: a C ABI
//! (`include/stats_pipe.h`) and the fork-aware runtime under it, which the
//! Python package `stats_pipe` (`pipe-writer/python`) uses too.
//!
//! A process records by name or through handles; serving its
//! `<dir>/<pid>.stats` starts on the first record (`STATS_PIPE_DIR`
//! respected) unless `STATS_PIPE_AUTOSTART=0`. Pre-fork servers and worker
//! pools are the users: a child made by `fork` starts from an empty
//! registry, serves its own pipe as soon as it records, and shares no FIFO,
//! thread or lock with its parent ([`fork`], [`runtime`]).
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("stats-pipe-capi-doc-{}", std::process::id()));
//! let path = stats_pipe::runtime::start(Some(&dir))?;
//! let runtime = stats_pipe::runtime::recording();
//! runtime.registry().incr("requests", 2);
//! let text = std::fs::read_to_string(&path)?;
//! assert!(text.contains("\n#counter requests: 1\n") && text.contains("\nrequests: 2\n"));
//! stats_pipe::runtime::stop(std::time::Duration::ZERO)?;
//! assert!(!path.exists());
//! # std::fs::remove_dir_all(&dir)?; // and our private spare directory
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// Unsafe code is allowed in two modules only: `ffi::lent` (the memory a C
// caller lends: strings and buffers) and `atfork` (the one `pthread_atfork`
// call); besides, `ffi`'s table exports each C function by its name.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod atfork;
mod error;
pub mod ffi;
pub mod fork;
pub mod runtime;

pub use error::Error;
