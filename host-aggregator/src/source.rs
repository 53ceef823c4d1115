//! What one read pass found: every source (pipe) with its status, and the
//! host-wide merge of the good ones.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use stats_core::envelope::Header;
use stats_core::{ParseError, Snapshot};

/// Why a path under the pipe directory was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// The path is a symbolic link (never followed).
    Symlink,
    /// The path is not a FIFO (a regular file, a directory, a socket...).
    NotFifo,
    /// The FIFO's owner is not the owner of the process in its name
    /// (someone else squatted the name).
    WrongOwner {
        /// Owner of the FIFO.
        fifo_uid: u32,
        /// Owner of the process.
        process_uid: u32,
    },
    /// Opening it was not permitted.
    Permission,
    /// The name is not `<pid>.stats` with a decimal PID.
    BadName,
}

/// The outcome of reading one source in a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// A complete snapshot (or a foreign writer's full output) was read.
    Ok,
    /// The writer did not finish within the pass deadline.
    TimedOut,
    /// Every attempt gave an empty, torn or doubled snapshot.
    Incomplete,
    /// The source sent more than the byte cap.
    TooLarge,
    /// The path was not read, and why.
    Refused(RefuseReason),
    /// The PID is dead, or the FIFO is older than the process now holding
    /// that PID: a leftover. `gc` removes these.
    Stale,
    /// Listed, but gone when opened (and on every retry).
    Vanished,
}

/// One pipe and what reading it gave.
#[derive(Clone, Debug)]
pub struct Source {
    /// Path of the pipe.
    pub path: PathBuf,
    /// PID from the file name, if it is `<pid>.stats`.
    pub pid: Option<u32>,
    /// The outcome.
    pub status: Status,
    /// The stats read (empty unless `status` is `Ok`), metadata removed.
    pub snapshot: Snapshot,
    /// The envelope header, for our writers' snapshots.
    pub header: Option<Header>,
    /// Whether the writer is foreign (no envelope: pipestatic, a script).
    pub foreign: bool,
    /// Good stat lines read.
    pub lines: u64,
    /// Bad lines skipped (counted, never fatal).
    pub bad_lines: u64,
    /// The first bad lines, with line numbers.
    pub first_errors: Vec<ParseError>,
    /// Opens tried in this pass.
    pub attempts: u32,
    /// Bytes read in the last attempt.
    pub bytes: usize,
    /// When a good snapshot was last read from this source (this pass or an
    /// earlier one of the same collector).
    pub last_seen: Option<SystemTime>,
}

/// Limits for one read pass.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// The pipe directory.
    pub dir: PathBuf,
    /// The whole pass ends by this long after it starts.
    pub deadline: Duration,
    /// Bytes read per source at most; more makes it `TooLarge`.
    pub max_bytes: usize,
    /// Longest line accepted, in bytes.
    pub max_line: usize,
    /// Extra opens for an empty or incomplete snapshot.
    pub retries: u32,
}

/// Everything one pass read.
#[derive(Clone, Debug)]
pub struct Pass {
    /// When the pass started.
    pub started: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Every source found, sorted by path.
    pub sources: Vec<Source>,
    /// The host-wide merge of every `Ok` source.
    pub merged: Snapshot,
}
