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

impl RefuseReason {
    /// A short snake_case word for JSON and logs: `symlink`, `not_fifo`,
    /// `wrong_owner`, `permission`, `bad_name`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefuseReason::Symlink => "symlink",
            RefuseReason::NotFifo => "not_fifo",
            RefuseReason::WrongOwner { .. } => "wrong_owner",
            RefuseReason::Permission => "permission",
            RefuseReason::BadName => "bad_name",
        }
    }
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
    /// An unexpected system error on this source (the message says which
    /// call and why). Rare: the known cases have their own status.
    Failed(String),
}

/// Defines [`Status::as_str`] and [`Status::WORDS`] from one list, so the
/// words cannot drift apart from the variants (the match is exhaustive).
macro_rules! status_words {
    ($($variant:pat => $word:literal,)*) => {
        impl Status {
            /// Every [`Status::as_str`] word, in the order the variants are
            /// declared (the Prometheus source counts list them so).
            pub const WORDS: &[&str] = &[$($word),*];

            /// A short snake_case word for JSON and logs: `ok`, `timed_out`,
            /// `incomplete`, `too_large`, `refused`, `stale`, `vanished`,
            /// `failed` (the refusal's reason is [`RefuseReason::as_str`]).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($variant => $word,)*
                }
            }
        }
    };
}

status_words! {
    Status::Ok => "ok",
    Status::TimedOut => "timed_out",
    Status::Incomplete => "incomplete",
    Status::TooLarge => "too_large",
    Status::Refused(_) => "refused",
    Status::Stale => "stale",
    Status::Vanished => "vanished",
    Status::Failed(_) => "failed",
}

impl Status {
    /// Whether the source's stats were read and count in the merge.
    pub fn is_ok(&self) -> bool {
        *self == Status::Ok
    }
}

impl std::fmt::Display for Status {
    /// `ok`, `refused (symlink)`, `failed (cannot read: ...)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Refused(RefuseReason::WrongOwner {
                fifo_uid,
                process_uid,
            }) => write!(
                f,
                "refused (wrong owner: FIFO uid {fifo_uid}, process uid {process_uid})"
            ),
            Status::Refused(reason) => write!(f, "refused ({})", reason.as_str()),
            Status::Failed(message) => write!(f, "failed ({message})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// One pipe and what reading it gave.
#[derive(Clone, Debug)]
pub struct Source {
    /// Path of the pipe.
    pub path: PathBuf,
    /// PID from the file name, if it is `<pid>.stats` (`<pid>.traces`).
    pub pid: Option<u32>,
    /// The outcome.
    pub status: Status,
    /// The stats read (empty unless `status` is `Ok`), metadata removed.
    pub snapshot: Snapshot,
    /// What each stat is, as the writer declared it (`#counter NAME: 1`,
    /// ...; empty for a foreign writer, whose stats are all gauges).
    pub kinds: stats_core::kinds::Kinds,
    /// The envelope header, for our writers' snapshots.
    pub header: Option<Header>,
    /// Whether the writer is foreign (no envelope: pipestatic, a script).
    pub foreign: bool,
    /// Stats read: good stat lines, a name repeated in one snapshot
    /// counted once (the later line wins, as in pipestatic's dict).
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

impl Source {
    /// A source not read yet: status [`Status::Vanished`] until a read says
    /// otherwise, PID taken from a `<pid>.stats` file name.
    pub fn new(path: PathBuf) -> Source {
        let pid = pid_from_path(&path);
        Source {
            path,
            pid,
            status: Status::Vanished,
            snapshot: Snapshot::new(),
            kinds: stats_core::kinds::Kinds::new(),
            header: None,
            foreign: false,
            lines: 0,
            bad_lines: 0,
            first_errors: Vec::new(),
            attempts: 0,
            bytes: 0,
            last_seen: None,
        }
    }
}

/// The PID in a `<pid>.stats` (or a trace FIFO's `<pid>.traces`) file
/// name: decimal digits only, no sign, no leading zero, not 0, and within
/// `u32`.
pub fn pid_from_path(path: &std::path::Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let digits = name
        .strip_suffix(".stats")
        .or_else(|| name.strip_suffix(".traces"))?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Limits for one read pass. Build with [`ReadOptions::new`] and change the
/// fields you need.
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
    /// Extra opens for an empty or incomplete snapshot, or for a path that
    /// was listed but missing at open (pipestatic's writer re-creates its
    /// FIFO after each read).
    pub retries: u32,
    /// Wait before such a retry.
    pub retry_delay: Duration,
}

impl ReadOptions {
    /// Default pass deadline: a live writer answers in well under a
    /// millisecond, so only a stuck one waits this long, and one second
    /// still fits a Prometheus scrape timeout.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);
    /// Default byte cap per source: 16 MiB is ~300,000 stats, far past any
    /// sane process, small enough that a hostile writer cannot exhaust memory.
    pub const DEFAULT_MAX_BYTES: usize = 16 << 20;
    /// Default retries: three, enough for 4 concurrent readers in the
    /// measurements of docs/FIFO.md.
    pub const DEFAULT_RETRIES: u32 = 3;
    /// Default wait between retries (~2 ms, as measured in docs/FIFO.md).
    pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(2);

    /// Options for reading `dir` with the defaults above and
    /// [`stats_core::DEFAULT_MAX_LINE`].
    pub fn new(dir: impl Into<PathBuf>) -> ReadOptions {
        ReadOptions {
            dir: dir.into(),
            deadline: ReadOptions::DEFAULT_DEADLINE,
            max_bytes: ReadOptions::DEFAULT_MAX_BYTES,
            max_line: stats_core::DEFAULT_MAX_LINE,
            retries: ReadOptions::DEFAULT_RETRIES,
            retry_delay: ReadOptions::DEFAULT_RETRY_DELAY,
        }
    }
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
    /// The host-wide merge of every `Ok` source (plus the counters and
    /// histograms retained from exited processes).
    pub merged: Snapshot,
    /// What each merged stat is, as the writers declared it (the union over
    /// sources); an undeclared stat is a gauge.
    pub kinds: stats_core::kinds::Kinds,
}

impl Pass {
    /// The source of process `pid`, if its pipe was found.
    pub fn source(&self, pid: u32) -> Option<&Source> {
        self.sources.iter().find(|s| s.pid == Some(pid))
    }

    /// How many sources were read `Ok`.
    pub fn ok_count(&self) -> usize {
        self.sources.iter().filter(|s| s.status.is_ok()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_from_stats_and_traces_names() {
        let pid = |name: &str| pid_from_path(std::path::Path::new(name));
        assert_eq!(pid("/d/42.stats"), Some(42));
        assert_eq!(pid("/d/traces/42.traces"), Some(42));
        for bad in [
            "0.stats",
            "042.traces",
            "+1.stats",
            "42.trace",
            "42",
            ".traces",
            "x.traces",
        ] {
            assert_eq!(pid(bad), None, "{bad}");
        }
    }
}
