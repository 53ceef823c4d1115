//! The aggregator's error type.

use std::path::PathBuf;

/// What can go wrong in the aggregator as a whole (one bad source is not an
/// error: it gets a [`crate::Status`] and the pass goes on).
#[derive(Debug)]
pub enum Error {
    /// The pipe directory could not be listed.
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A system call on a path failed.
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Dir { path, source } => {
                write!(f, "cannot list pipe directory {}: {source}", path.display())
            }
            Error::Io { action, path, source } => {
                write!(f, "cannot {action} {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Dir { source, .. } | Error::Io { source, .. } => Some(source),
        }
    }
}
