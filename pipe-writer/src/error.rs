//! `Error`: everything that can go wrong while setting up or serving a pipe.

use std::path::PathBuf;

use nix::errno::Errno;

/// Why a pipe could not be set up or served, or a process's figures read.
/// Every variant names the path it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A system call on the pipe directory failed.
    Dir {
        /// The directory.
        path: PathBuf,
        /// What was being done (`"create"`, `"open"`, ...).
        op: &'static str,
        /// The system's reason.
        errno: Errno,
    },
    /// The directory is a symbolic link; it is never followed.
    DirIsSymlink {
        /// The directory path as given.
        path: PathBuf,
    },
    /// The path exists but is not a directory.
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The directory is writable by other users but lacks the sticky bit, so
    /// anyone could rename or delete our FIFO.
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The directory is owned by a user other than root and us: that user
    /// could delete or rename our FIFO and plant their own at its name, so
    /// the directory is refused (like OpenSSH's `StrictModes`).
    DirOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner's user ID.
        owner: u32,
        /// Its owner's user name, if the user database knows it.
        owner_name: Option<String>,
        /// Our effective user ID.
        uid: u32,
    },
    /// Our user's private spare directory in the pipe directory
    /// (`.spares-<uid>`, see [`crate::spare_dir_name`]) is owned by another
    /// user or may be entered by others: whoever may write in it could swap
    /// a FIFO of theirs in at our path, so it is refused.
    SpareDir {
        /// The spare directory.
        path: PathBuf,
        /// Its owner's user ID.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// Our effective user ID.
        uid: u32,
    },
    /// Our `<pid>.stats` name belongs to another user (squatted).
    Squatted {
        /// The FIFO path.
        path: PathBuf,
        /// The owner found there.
        owner: u32,
        /// Our effective user ID.
        uid: u32,
    },
    /// Something other than a FIFO sits at our path; it is left alone.
    NotFifo {
        /// The FIFO path.
        path: PathBuf,
        /// What was found instead (`"a symbolic link"`, ...).
        found: &'static str,
    },
    /// A FIFO of our user sits at our path, but not the one this server made
    /// and serves: readers of the path no longer reach us.
    Replaced {
        /// The FIFO path.
        path: PathBuf,
    },
    /// This process already serves a pipe in that directory.
    AlreadyServing {
        /// The FIFO path.
        path: PathBuf,
    },
    /// A system call on a FIFO failed.
    Fifo {
        /// The FIFO path (or its temporary name).
        path: PathBuf,
        /// What was being done (`"mkfifo"`, `"rename"`, ...).
        op: &'static str,
        /// The system's reason.
        errno: Errno,
    },
    /// `/proc/self/fd` is needed to reach FIFOs by descriptor and is missing.
    NoProc {
        /// The system's reason.
        errno: Errno,
    },
    /// The serving thread could not be started.
    Spawn {
        /// The FIFO path.
        path: PathBuf,
        /// The system's reason, as the standard library reported it.
        reason: String,
    },
    /// The serving thread panicked (a bug); the FIFO was removed if possible.
    Panicked {
        /// The FIFO path.
        path: PathBuf,
    },
    /// A file under `/proc/<pid>` could not be read (the process is gone).
    Proc {
        /// The file, e.g. `/proc/4242/stat`.
        path: PathBuf,
        /// The system's reason.
        errno: Errno,
    },
    /// A file under `/proc/<pid>` does not read as expected.
    ProcMalformed {
        /// The file.
        path: PathBuf,
        /// What could not be found in it.
        what: &'static str,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Dir { path, op, errno } => {
                write!(
                    f,
                    "cannot {op} stats pipe directory {}: {errno}",
                    path.display()
                )
            }
            Error::DirIsSymlink { path } => write!(
                f,
                "stats pipe directory {} is a symbolic link; refusing to follow it",
                path.display()
            ),
            Error::NotADirectory { path } => {
                write!(
                    f,
                    "stats pipe directory {} is not a directory",
                    path.display()
                )
            }
            Error::UnsafeDir { path, mode } => write!(
                f,
                "stats pipe directory {} is writable by others (mode {mode:o}) but not sticky; \
                 anyone could replace our FIFO (chmod +t or use another directory)",
                path.display()
            ),
            Error::DirOwner {
                path,
                owner,
                owner_name,
                uid,
            } => {
                write!(
                    f,
                    "stats pipe directory {} is owned by user {owner}",
                    path.display()
                )?;
                if let Some(name) = owner_name {
                    write!(f, " ({name})")?;
                }
                write!(
                    f,
                    ", not by root or by us (user {uid}); that user could replace our FIFO, \
                     so it is refused (make root own it, or use another directory)"
                )
            }
            Error::SpareDir {
                path,
                owner,
                mode,
                uid,
            } => write!(
                f,
                "spare FIFO directory {} is owned by user {owner} with mode {mode:o}; it must be \
                 ours (user {uid}) with no access for others (mode 700), so it is refused \
                 (remove it: a writer makes it anew)",
                path.display()
            ),
            Error::Squatted { path, owner, uid } => write!(
                f,
                "{} belongs to user {owner}, not to us (user {uid}): another user squats our name",
                path.display()
            ),
            Error::NotFifo { path, found } => write!(
                f,
                "{} is {found}, not a FIFO; leaving it alone",
                path.display()
            ),
            Error::Replaced { path } => write!(
                f,
                "{} is a FIFO of our user but not the one this server made; \
                 readers there no longer reach us",
                path.display()
            ),
            Error::AlreadyServing { path } => write!(
                f,
                "this process already serves {}; stop that server first",
                path.display()
            ),
            Error::Fifo { path, op, errno } => {
                write!(f, "cannot {op} stats FIFO {}: {errno}", path.display())
            }
            Error::NoProc { errno } => write!(
                f,
                "/proc/self/fd is not available ({errno}); the stats pipe needs procfs"
            ),
            Error::Spawn { path, reason } => write!(
                f,
                "cannot start the thread serving {}: {reason}",
                path.display()
            ),
            Error::Panicked { path } => {
                write!(f, "the thread serving {} panicked", path.display())
            }
            Error::Proc { path, errno } => write!(f, "cannot read {}: {errno}", path.display()),
            Error::ProcMalformed { path, what } => {
                write!(f, "{}: no readable {what}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_failures_are_named_by_their_errno() {
        // Disk full while serving: the message names the errno, no guess.
        let error = Error::Fifo {
            path: PathBuf::from("/run/pipes/.42.stats.tmp"),
            op: "mkfifo",
            errno: Errno::ENOSPC,
        };
        assert_eq!(
            error.to_string(),
            "cannot mkfifo stats FIFO /run/pipes/.42.stats.tmp: ENOSPC: No space left on device"
        );
    }

    #[test]
    fn a_directory_owner_is_named_by_uid_and_name() {
        let mut error = Error::DirOwner {
            path: PathBuf::from("/tmp/stats-pipe"),
            owner: 65534,
            owner_name: Some("nobody".into()),
            uid: 0,
        };
        assert_eq!(
            error.to_string(),
            "stats pipe directory /tmp/stats-pipe is owned by user 65534 (nobody), not by root \
             or by us (user 0); that user could replace our FIFO, so it is refused (make root \
             own it, or use another directory)"
        );
        if let Error::DirOwner { owner_name, .. } = &mut error {
            *owner_name = None;
        }
        assert!(
            error
                .to_string()
                .starts_with("stats pipe directory /tmp/stats-pipe is owned by user 65534, not"),
            "{error}"
        );
    }
}
